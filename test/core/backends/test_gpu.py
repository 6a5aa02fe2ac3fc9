"""CUDA paths: eager (fp32, AMP) and TensorRT against eager on the same clip, TensorRT engine
cache hit on the second start, same tracks as eager in fp32. Marked gpu: skipped without CUDA
(test/conftest.py); on a CUDA machine without torch-tensorrt the TensorRT tests fail, naming
`make setup` (the gpu extra), rather than skip."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from stemseg_core.backends import create_backend
from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.backends.runner import NetworkRunner
from stemseg_core.model import build_model

pytestmark = pytest.mark.gpu
H, W = 64, 96


@pytest.fixture
def model(tiny_config):
    from stemseg_core.config import config_from_dict

    d = tiny_config.to_dict()
    d["model"]["output_stride"] = 2
    torch.manual_seed(0)
    m = build_model(config_from_dict(d)).eval()
    for p in m.refiners.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return m.cuda()


def _clip(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return (torch.rand(1, n, 3, H, W, generator=g) * 255).cuda()


def _max_diff(got, ref):
    return {k: float((got[k].float() - ref[k].float()).abs().max()) for k in ref}


@pytest.mark.parametrize("name,precision,tol", [
    ("torch", "fp32", {"embeddings": 1e-4, "precisions": 1e-2, "seediness": 1e-4,
                       "semantic": 1e-3}),
    ("torch", "fp16", {"embeddings": 0.05, "precisions": 5.0, "seediness": 0.05,
                       "semantic": 0.2}),
    ("tensorrt", "fp32", {"embeddings": 1e-3, "precisions": 5e-2, "seediness": 1e-3,
                          "semantic": 1e-2}),
    ("tensorrt", "fp16", {"embeddings": 0.05, "precisions": 5.0, "seediness": 0.05,
                          "semantic": 0.2}),
])
def test_cuda_backend_matches_eager(model, tmp_path, name, precision, tol):
    backend = create_backend(name, model, torch.device("cuda"), precision,
                             cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), 4)
    runner = NetworkRunner(backend, capacity=8)
    clip = _clip()
    for start, end in [(0, 4), (2, 6)]:
        got = runner(clip[:, start:end])
        with torch.inference_mode():
            ref = model(clip[:, start:end])
        diff = _max_diff(got, ref)
        assert all(diff[k] < tol[k] for k in ref), (name, precision, diff)
        assert all(got[k].dtype == torch.float32 for k in got)
    assert runner.reused == 2


def test_tensorrt_engine_cache_hit_on_second_start(model, tmp_path, caplog):
    for start in range(2):
        with caplog.at_level(logging.INFO, logger="stemseg_core.backends"):
            caplog.clear()
            backend = create_backend("tensorrt", model, torch.device("cuda"), "fp16",
                                     cache=ArtifactCache(tmp_path))
            backend.prepare((3, H, W), 4)
        if start == 0:
            assert "engine built" in caplog.text
        else:
            assert "engine built" not in caplog.text
            assert caplog.text.count("loaded from the cache") == 2  # encoder and decoder


def test_tensorrt_fp32_tracks_equal_eager(model, tmp_path):
    from stemseg_core.checkpoint import save_checkpoint
    from stemseg_core.inference.tracker import StreamingTracker

    ckpt = save_checkpoint(tmp_path / "m.pt", {k: v.cpu() for k, v in model.state_dict().items()},
                           model.cfg)
    frames = []
    rng = np.random.default_rng(0)
    for t in range(10):
        img = np.full((H, W, 3), 90, np.uint8) + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
        img[10:40, 5 + 3 * t:35 + 3 * t] = (220, 30, 30)
        img[30:60, 60 - 2 * t:80 - 2 * t] = (30, 30, 220)
        frames.append(img)

    def run(backend):
        tr = StreamingTracker.from_checkpoint(
            ckpt, device="cuda", overrides=[f"inference.backend={backend}",
                                            f"inference.engine_cache_dir={tmp_path / 'e'}"])
        tr.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0)
        out = [r for i, f in enumerate(frames) for r in tr.push(f, i)] + tr.flush()
        return [[(i.track_id, i.class_id) for i in r.instances] for r in out]

    ref = run("torch")
    assert sum(len(r) for r in ref) >= 10
    assert run("tensorrt") == ref


def test_warmup_builds_and_runs_a_clip(tmp_path, tiny_checkpoint):
    from stemseg_core.inference.tracker import StreamingTracker

    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cuda", overrides=[
        "inference.backend=auto", f"inference.engine_cache_dir={tmp_path}"])
    assert tr.warmup(64, 96) > 0
    assert tr._runner.backend.name == "tensorrt"  # auto on CUDA with torch-tensorrt installed
    assert tr.pending == 0 and tr.frames_pushed == 0
