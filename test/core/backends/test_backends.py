"""Backends against eager PyTorch: same outputs on the same clip (bounded per output), same
tracks on a drive in fp32; per-frame features reused across overlapping clips."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from stemseg_core.backends import BackendUnavailable, create_backend, registered, resolve_auto
from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.backends.runner import NetworkRunner
from stemseg_core.config import ConfigError, load_config
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_core.model import build_model

H, W = 64, 96
#: max |backend - eager| per output in fp32 (kernel rounding only; measured ~1e-5..4e-4)
FP32_TOL = {"embeddings": 1e-3, "precisions": 2e-2, "seediness": 1e-3, "semantic": 1e-3}


@pytest.fixture
def model(tiny_config):
    """The tiny test model with stride-2 refiners (the shipped model's layout: the stem is a
    feature too); seeded, so the module's tests share cached graphs."""
    from stemseg_core.config import config_from_dict

    d = tiny_config.to_dict()
    d["model"]["output_stride"] = 2
    torch.manual_seed(0)
    m = build_model(config_from_dict(d)).eval()
    for p in m.refiners.parameters():  # not the zero init: the refiners must matter
        torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One cache for the module: ONNX files are exported once for both CPU backends."""
    return tmp_path_factory.mktemp("engines")


def _clip(seed: int, n: int = 6) -> np.ndarray:
    """(1, n, 3, H, W) float32 0..255: what the tracker hands a runner."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, n, 3, H, W, generator=g) * 255).numpy()


def _eager(model, clip: np.ndarray) -> dict[str, np.ndarray]:
    """The whole model on ``clip`` (numpy in and out, as a runner)."""
    with torch.inference_mode():
        return {k: v.numpy() for k, v in model(torch.from_numpy(clip.copy())).items()}


def test_config_allows_auto_and_exactly_the_registered_backends():
    assert set(registered()) == {"torch", "inductor", "onnxruntime", "openvino", "tensorrt"}
    with pytest.raises(ConfigError, match=r"inference.backend: 'tvm' is not a registered backend; "
                                          r"allowed: auto, inductor, onnxruntime, openvino, "
                                          r"tensorrt, torch$"):
        load_config(None, ["inference.backend=tvm"])
    with pytest.raises(BackendUnavailable, match="unknown backend 'tvm'; allowed: auto, induct"):
        create_backend("tvm", None, torch.device("cpu"))
    cpu = torch.device("cpu")
    assert resolve_auto(cpu, "fp32") == "openvino"  # pinned in requirements.lock
    assert resolve_auto(cpu, "int8") == "openvino"


def test_bad_precision_is_a_clear_error(model):
    with pytest.raises(BackendUnavailable, match="does not run precision 'int8' on cpu.*fp32"):
        create_backend("torch", model, torch.device("cpu"), "int8")
    with pytest.raises(BackendUnavailable, match="TensorRT needs a CUDA GPU|precision"):
        create_backend("tensorrt", model, torch.device("cpu"), "fp16")


def test_torch_runner_reuses_features_and_stays_bit_identical(model, tmp_path):
    """Overlapping clips: frames seen before are not encoded again, and the outputs equal the
    whole model's bits (a lone new frame is encoded in a batch of two)."""
    backend = create_backend("torch", model, torch.device("cpu"), cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), 4)
    runner = NetworkRunner(backend, capacity=8)
    frames = _clip(1, 7)
    for start, end, new in [(0, 4, 4), (2, 6, 2), (5, 7, 1)]:
        before = runner.encoded
        clip = frames[:, start:end]
        got = runner(clip)
        assert runner.encoded - before == new
        ref = _eager(model, clip)
        for k in ref:
            assert got[k].dtype == np.float32 and np.array_equal(got[k], ref[k]), k
    assert runner.reused == 2 + 1


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_backend_matches_eager_on_a_clip(model, cache_dir, name):
    backend = create_backend(name, model, torch.device("cpu"), "fp32",
                             cache=ArtifactCache(cache_dir), num_threads=2)
    backend.prepare((3, H, W), 4)
    runner = NetworkRunner(backend, capacity=8)
    clip = _clip(2)
    for start, end in [(0, 4), (2, 6), (4, 6)]:  # a full clip, an overlapping one, a short one
        got = runner(clip[:, start:end])
        ref = _eager(model, clip[:, start:end])
        assert set(got) == set(ref)
        for k in ref:
            assert got[k].shape == ref[k].shape and got[k].dtype == np.float32
            diff = float(np.abs(got[k] - ref[k]).max())
            assert diff < FP32_TOL[k], (k, diff)
    assert runner.reused == 2 + 2


def test_same_tracks_as_eager_on_a_drive(model, cache_dir, tmp_path):
    """A drive of moving colour blocks through the streaming tracker: each fp32 backend gives
    the eager tracker's track IDs, classes and masks (pixels may differ only at borders)."""
    from stemseg_core.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.pt", model.state_dict(), model.cfg)
    rng = np.random.default_rng(0)
    frames = []
    for t in range(10):
        img = np.full((H, W, 3), 90, np.uint8) + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
        img[10:40, 5 + 3 * t:35 + 3 * t] = (220, 30, 30)
        img[30:60, 60 - 2 * t:80 - 2 * t] = (30, 30, 220)
        frames.append(img)

    def run(backend):
        tr = StreamingTracker.from_checkpoint(
            ckpt, device="cpu", overrides=[f"inference.backend={backend}",
                                           f"inference.engine_cache_dir={cache_dir}"])
        tr.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0)
        out = [r for i, f in enumerate(frames) for r in tr.push(f, i)] + tr.flush()
        return [[(i.track_id, i.class_id, i.mask) for i in r.instances] for r in out]

    ref = run("torch")
    assert sum(len(r) for r in ref) >= 10  # instances to compare
    for name in ("onnxruntime", "openvino"):
        got = run(name)
        assert len(got) == len(ref) == len(frames)
        for a, b in zip(got, ref):
            assert [(i, c) for i, c, _ in a] == [(i, c) for i, c, _ in b], name
            for (_, _, ma), (_, _, mb) in zip(a, b):
                assert (ma != mb).sum() <= 0.01 * mb.size, name


def test_openvino_int8_without_artifact_names_the_export_command(model, cache_dir):
    backend = create_backend("openvino", model, torch.device("cpu"), "int8",
                             cache=ArtifactCache(cache_dir))
    with pytest.raises(BackendUnavailable, match="stemseg export --format openvino "
                                                 "--precision int8 --calibration"):
        backend.prepare((3, H, W), 4)


def test_damaged_cached_graph_is_rebuilt_by_the_tracker(model, tmp_path, caplog):
    from stemseg_core.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.pt", model.state_dict(), model.cfg)
    cache = tmp_path / "engines"
    over = ["inference.backend=onnxruntime", f"inference.engine_cache_dir={cache}"]
    frames = [np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
              for i in range(4)]
    first = StreamingTracker.from_checkpoint(ckpt, device="cpu", overrides=over)
    assert first.backend_label == "onnxruntime fp32 (not built yet)"
    ref = first.predict_clip(frames)
    assert first.backend_label == "onnxruntime fp32"  # what the node reports in /diagnostics
    onnx = sorted(cache.glob("onnx/encoder-*/encoder.onnx"))
    assert len(onnx) == 1
    onnx[0].write_bytes(onnx[0].read_bytes()[:1000])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING):
        again = StreamingTracker.from_checkpoint(ckpt, device="cpu", overrides=over)
        got = again.predict_clip(frames)
    assert "unusable" in caplog.text
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])


def test_runner_tells_apart_frames_that_differ_off_the_sampled_pixels(model, tmp_path):
    """A static scene: a frame that differs from a kept one in one pixel only (not among the
    sampled values) is encoded anew, not served the kept frame's features."""
    backend = create_backend("torch", model, torch.device("cpu"), cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), 2)
    runner = NetworkRunner(backend, capacity=4)
    clip = _clip(3, 2)
    runner(clip)
    changed = clip.copy()
    changed.reshape(-1)[1] += 50.0  # flat index 1: between the samples (every 4th value)
    got = runner(changed)
    assert runner.encoded == 3 and runner.reused == 1  # frame 0 anew, frame 1 reused
    ref = _eager(model, changed)
    for k in ref:
        assert np.array_equal(got[k], ref[k]), k


@pytest.mark.parametrize("name", ["torch", "onnxruntime", "openvino"])
def test_authors_layout_runs_on_every_cpu_backend(cache_dir, name):
    """The authors' network (model.architecture: official, cut at its own encode_frames /
    decode_clip) through each backend: every output, foreground included, matches its own
    forward on a full and a short (front-padded) clip."""
    from stemseg_core.config import load_config

    cfg = load_config("config/model/official_kitti_mots.yaml", [
        "model.backbone.name=mobilenet_v3_small", "model.backbone.fpn_channels=32",
        "model.backbone.frozen_bn=false", "model.decoder.widths=[32,32,32,32]",
        "model.decoder.groupnorm_groups=8"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    backend = create_backend(name, model, torch.device("cpu"), "fp32",
                             cache=ArtifactCache(cache_dir), num_threads=2)
    backend.prepare((3, 96, 128), 8)
    runner = NetworkRunner(backend, capacity=16)
    clip = (torch.rand(1, 8, 3, 96, 128, generator=torch.Generator().manual_seed(4)) * 255).numpy()
    for part in (clip, clip[:, 3:]):
        got = runner(part)
        ref = _eager(model, part)
        assert set(got) == set(ref) == {"embeddings", "precisions", "seediness", "semantic",
                                         "foreground"}
        for k in ref:
            assert got[k].shape == ref[k].shape, k
            tol = 1e-3 * float(np.abs(ref[k]).max()) if k == "precisions" else 1e-3
            assert float(np.abs(got[k] - ref[k]).max()) < tol, (name, k)


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_warmup_of_every_length_leaves_nothing_to_build_mid_stream(model, cache_dir, tmp_path,
                                                                    name):
    """The node's warm-up builds the decoders of every clip length a flush can run (1..T-1),
    so a stream's short last clip builds nothing new (no build stalls the worker); openvino
    keeps only the full clips' decoder compiled, and frees a flush's after it ran."""
    from stemseg_core.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.pt", model.state_dict(), model.cfg)
    tr = StreamingTracker.from_checkpoint(
        ckpt, device="cpu", overrides=[f"inference.backend={name}",
                                       f"inference.engine_cache_dir={cache_dir}"])
    t = tr.clip_length
    assert t >= 3  # lengths to build beyond T
    tr.warmup(H, W, every_length=True)
    backend = tr.runner.backend
    compiled = [t] if name == "openvino" else list(range(1, t + 1))
    assert sorted(backend._decoders) == compiled
    if name == "openvino":  # compiled per frame count
        assert sorted(backend._encoders) == list(range(1, t + 1))
    folder = cache_dir / ("openvino" if name == "openvino" else "onnx")  # its graphs
    built = sorted(p.name for p in folder.glob("*"))
    assert sum(n.startswith("decoder-L") for n in built) >= t
    frames = [np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
              for i in range(t + 1)]
    out = [r for i, f in enumerate(frames) for r in tr.push(f, i)] + tr.flush()
    assert [r.stamp for r in out] == list(range(t + 1))
    assert sorted(p.name for p in folder.glob("*")) == built
    assert sorted(backend._decoders) == compiled
    if name == "openvino":
        assert sorted(backend._encoders) == list(range(1, t + 1))


def test_runner_contract_is_numpy_in_and_out(model, tmp_path):
    """build_runner always gives a callable runner, numpy in and out: an EagerRunner for a
    model that is not an STEmSeg network (the tracker never touches torch); a tensor is
    refused with a clear error."""
    from stemseg_core.backends.runner import EagerRunner, build_runner

    class Whole(torch.nn.Module):  # not splittable: no backbone/refiners/...
        def forward(self, clip):
            return {"seediness": clip[:, :, 0].mean(dim=1, keepdim=True).double()}

    inf = model.cfg.inference
    eager = build_runner(Whole(), inf, "cpu", (3, H, W), 4)
    assert isinstance(eager, EagerRunner) and eager.backend is None
    clip = _clip(6, 2)
    out = eager(clip)
    assert out["seediness"].dtype == np.float32 and isinstance(out["seediness"], np.ndarray)
    np.testing.assert_allclose(out["seediness"], clip[:, :, 0].mean(1, keepdims=True), rtol=1e-6)
    runner = build_runner(model, inf, "cpu", (3, H, W), 4)
    assert isinstance(runner, NetworkRunner) and runner.backend.name == "torch"
    with pytest.raises(ValueError, match=r"numpy array \(1, L, 3, Hp, Wp\), got Tensor"):
        runner(torch.from_numpy(clip))
