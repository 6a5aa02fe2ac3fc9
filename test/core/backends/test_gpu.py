"""CUDA paths: eager (fp32, AMP) and TensorRT against eager on the same clip, TensorRT engine
cache hit on the second start, same tracks as eager in fp32, `auto` on CUDA. Marked gpu: skipped
without CUDA (test/conftest.py); on a CUDA machine without torch-tensorrt the TensorRT tests
fail, naming `make setup` (the gpu extra), rather than skip (scripts/gpu_check.sh deselects
them there with -k "not tensorrt"). The inductor backend's CUDA tests: test_inductor_backend.py."""
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


def _clip(n: int = 6) -> np.ndarray:
    """(1, n, 3, H, W) float32 0..255 on the host: what the tracker hands a runner."""
    g = torch.Generator().manual_seed(5)
    return (torch.rand(1, n, 3, H, W, generator=g) * 255).numpy()


def _eager(model, clip: np.ndarray) -> dict[str, np.ndarray]:
    """The whole model on ``clip`` on the model's device, outputs as numpy."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(torch.from_numpy(clip.copy()).to(device))
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def _max_diff(got, ref):
    return {k: float(np.abs(got[k] - ref[k]).max()) for k in ref}


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
        ref = _eager(model, clip[:, start:end])
        diff = _max_diff(got, ref)
        assert all(diff[k] < tol[k] for k in ref), (name, precision, diff)
        assert all(got[k].dtype == np.float32 for k in got)
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


def test_warmup_builds_and_runs_a_clip(tmp_path, tiny_checkpoint, monkeypatch):
    from stemseg_core.backends.tensorrt_backend import TensorRTBackend
    from stemseg_core.inference.tracker import StreamingTracker

    monkeypatch.setenv("STEMSEG_INDUCTOR_MODE", "default")  # compiles in seconds
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cuda", overrides=[
        "inference.backend=auto", f"inference.engine_cache_dir={tmp_path}"])
    assert tr.warmup(64, 96) > 0
    # auto on CUDA: TensorRT where torch-tensorrt imports, else inductor (torch.compile)
    has_trt = TensorRTBackend.unavailable_reason(torch.device("cuda")) is None
    assert tr.runner.backend.name == ("tensorrt" if has_trt else "inductor")
    assert tr.pending == 0 and tr.frames_pushed == 0


def test_tensorrt_binds_engine_io_by_name(model, tmp_path):
    """The engines' I/O names are written next to them (bindings.json) and are exactly the
    engine's own; the decoder's outputs come back under the right names (embeddings and
    precisions share a shape: compared with eager, a swap would show)."""
    import json

    backend = create_backend("tensorrt", model, torch.device("cuda"), "fp32",
                             cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), 4)
    files = sorted(tmp_path.glob("tensorrt/*/bindings.json"))
    assert len(files) == 2  # encoder, decoder-L4
    enc = backend._encoder
    assert enc.inputs == json.loads(next(f for f in files if "encoder" in str(f))
                                    .read_text())["inputs"]
    assert len(enc.outputs) == len(backend.encoder.names)
    dec = backend._decoders[4]
    assert len(dec.inputs) == len(backend.encoder.names)
    assert len(dec.outputs) == len(backend.decoder.names)
    clip = _clip(4)
    got = NetworkRunner(backend, capacity=8)(clip)
    ref = _eager(model, clip)
    for k in ref:  # a swapped binding would differ by far more than rounding
        bound = 5e-2 * max(1.0, float(np.abs(ref[k]).max()))
        assert float(np.abs(got[k] - ref[k]).max()) < bound, k


def test_tensorrt_short_clip_built_mid_stream_inside_inference_mode(model, tmp_path):
    """A flush's shorter clip builds its decoder engine mid-stream, inside the tracker's
    torch.inference_mode(): the build leaves inference mode (torch.export) and matches eager."""
    backend = create_backend("tensorrt", model, torch.device("cuda"), "fp32",
                             cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), 4)
    runner = NetworkRunner(backend, capacity=8)
    clip = _clip(6)
    with torch.inference_mode():
        runner(clip[:, 0:4])
        got = runner(clip[:, 4:6])  # 2 frames: decoder-L2 built now
    ref = _eager(model, clip[:, 4:6])
    assert 2 in backend._decoders
    diff = _max_diff(got, ref)
    assert all(diff[k] < {"embeddings": 1e-3, "precisions": 5e-2, "seediness": 1e-3,
                          "semantic": 1e-2}[k] for k in ref), diff


def test_tensorrt_every_length_warmup_leaves_nothing_to_build(tmp_path, tiny_checkpoint):
    from stemseg_core.inference.tracker import StreamingTracker

    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cuda", overrides=[
        "inference.backend=tensorrt", "inference.precision=fp16",
        f"inference.engine_cache_dir={tmp_path}"])
    tr.warmup(64, 96, every_length=True)
    cache = tr.runner.backend.cache
    built = cache.built
    assert sorted(tr.runner.backend._decoders) == [1, 2, 3, 4]
    rng = np.random.default_rng(1)
    for i in range(7):
        tr.push(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), i)
    tr.flush()
    assert cache.built == built


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU (cuda:1)")
def test_tensorrt_on_the_second_gpu(model, tmp_path):
    model = model.to("cuda:1")
    backend = create_backend("tensorrt", model, torch.device("cuda:1"), "fp32",
                             cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), 4)
    clip = _clip(4)
    got = NetworkRunner(backend, capacity=8)(clip)
    assert all(isinstance(v, np.ndarray) for v in got.values())
    ref = _eager(model, clip)  # the model is on cuda:1
    assert _max_diff(got, ref)["embeddings"] < 1e-3
