"""The ``inductor`` backend (torch.compile): outputs match eager; batch padding, modes, the
fallback to eager when a compile fails, CUDA-graph outputs copied.

Most tests replace ``torch.compile`` by a stand-in (the module itself, or one that fails), so
they test the backend's own logic in about a second. One CPU test compiles for real (tiny
model, one clip: two graphs; about 20 s with torch's compile cache warm, minutes cold on 2
busy cores: marked slow). The GPU tests compile fp32/bf16 and a CUDA-graph mode on CUDA.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from stemseg_core.backends import AUTO_ORDER, BackendUnavailable, create_backend, registered
from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.backends.inductor_backend import (
    DEFAULT_MODES,
    MODE_ENV,
    batch_bucket,
    inductor_mode,
)
from stemseg_core.backends.runner import NetworkRunner
from stemseg_core.model import build_model

H, W = 64, 96
#: max |inductor - eager| in fp32 on the CPU (measured on the tiny model: 2e-6 at most)
FP32_TOL = {"embeddings": 1e-4, "precisions": 1e-3, "seediness": 1e-4, "semantic": 1e-4}


@pytest.fixture
def model(tiny_config):
    """The tiny test model with stride-2 refiners (as test_backends.py)."""
    from stemseg_core.config import config_from_dict

    d = tiny_config.to_dict()
    d["model"]["output_stride"] = 2
    torch.manual_seed(0)
    m = build_model(config_from_dict(d)).eval()
    for p in m.refiners.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.fixture
def fake_compile(monkeypatch):
    """torch.compile replaced: returns what ``make(module)`` gives (default: the module), and
    records each call's keyword arguments."""
    calls: list[dict] = []
    state = {"make": lambda module: module}

    def compile_(module, **kwargs):
        calls.append(kwargs)
        return state["make"](module)

    monkeypatch.setattr(torch, "compile", compile_)
    monkeypatch.delenv(MODE_ENV, raising=False)
    return calls, state


def _clip(seed: int, n: int) -> np.ndarray:
    """(1, n, 3, H, W) float32 0..255: what the tracker hands a runner (numpy)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, n, 3, H, W, generator=g) * 255).numpy()


def _eager(model, clip: np.ndarray) -> dict[str, np.ndarray]:
    """The whole model on ``clip`` on the model's device, outputs as numpy."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(torch.from_numpy(clip.copy()).to(device))
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def _max_diff(got, ref):
    return {k: float(np.abs(got[k] - ref[k]).max()) for k in ref}


def _runner(model, tmp_path, device="cpu", precision="fp32", clip_length=4):
    backend = create_backend("inductor", model, torch.device(device), precision,
                             cache=ArtifactCache(tmp_path))
    backend.prepare((3, H, W), clip_length)
    return backend, NetworkRunner(backend, capacity=2 * clip_length)


def test_batch_bucket_pads_to_powers_of_two_up_to_t():
    got = {(n, t): batch_bucket(n, t) for n, t in [(1, 8), (2, 8), (3, 8), (4, 8), (5, 8),
                                                   (8, 8), (9, 8), (3, 6), (5, 6), (2, 4)]}
    assert got == {(1, 8): 1, (2, 8): 2, (3, 8): 4, (4, 8): 4, (5, 8): 8, (8, 8): 8, (9, 8): 9,
                   (3, 6): 4, (5, 6): 6, (2, 4): 2}


def test_mode_per_device_and_from_the_environment(monkeypatch):
    monkeypatch.delenv(MODE_ENV, raising=False)
    assert inductor_mode("cpu") == "default"
    assert inductor_mode("cuda") == "max-autotune-no-cudagraphs" == DEFAULT_MODES["cuda"]
    monkeypatch.setenv(MODE_ENV, "reduce-overhead")
    assert inductor_mode("cuda") == "reduce-overhead"
    monkeypatch.setenv(MODE_ENV, "max-autotune-cudagraphs")
    with pytest.raises(ValueError, match="STEMSEG_INDUCTOR_MODE='max-autotune-cudagraphs' is "
                                         "not a torch.compile mode; use one of default"):
        inductor_mode("cuda")


def test_registered_after_tensorrt_on_cuda_and_fp32_only_on_the_cpu(model):
    assert "inductor" in registered()
    assert AUTO_ORDER["cuda"] == ("tensorrt", "inductor", "torch")
    with pytest.raises(BackendUnavailable, match="'inductor' does not run precision 'bf16' on "
                                                 "cpu; allowed there: fp32"):
        create_backend("inductor", model, torch.device("cpu"), "bf16")


def test_auto_on_cuda_goes_past_a_tensorrt_that_fails_to_import(monkeypatch):
    """`import torch_tensorrt` can raise OSError (a missing libnvinfer) or a bare Exception:
    TensorRT is then unavailable with the reason, and auto takes the next backend."""
    import sys

    from stemseg_core.backends import resolve_auto
    from stemseg_core.backends.inductor_backend import InductorBackend
    from stemseg_core.backends.tensorrt_backend import TensorRTBackend

    class BrokenLibs:
        def find_spec(self, name, path=None, target=None):
            if name in ("tensorrt", "torch_tensorrt"):
                raise OSError("libnvinfer.so.11: cannot open shared object file")
            return None

    for name in ("tensorrt", "torch_tensorrt"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenLibs(), *sys.meta_path])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda = torch.device("cuda")
    reason = TensorRTBackend.unavailable_reason(cuda)
    assert "does not import (OSError: libnvinfer.so.11" in reason
    expected = "inductor" if InductorBackend.unavailable_reason(cuda) is None else "torch"
    assert resolve_auto(cuda, "fp16") == expected


def test_compiles_each_graph_once_per_shape_and_pads_batches(model, tmp_path, fake_compile):
    """Stand-in compile (the eager modules): what is compiled with which settings, and the
    padded batches give the frames' own features."""
    calls, _ = fake_compile
    backend, runner = _runner(model, tmp_path)
    assert calls == [{"dynamic": False, "options": {"freezing": True}}] * 2  # encoder, decoder
    assert set(backend.compile_seconds) == {("encoder", 4), ("decoder", 4)}
    frames = _clip(1, 7)
    for start, end, new in [(0, 4, 4), (4, 7, 3)]:  # 3 new frames: padded to a batch of 4
        before = runner.encoded
        got = runner(frames[:, start:end])
        assert runner.encoded - before == new
        ref = _eager(model, frames[:, start:end])
        diff = _max_diff(got, ref)
        assert all(diff[k] < FP32_TOL[k] for k in ref), diff
    assert set(backend.compile_seconds) == {("encoder", 4), ("decoder", 4), ("decoder", 3)}
    backend.prepare_encoder(1)
    backend.prepare_encoder(2)
    backend.prepare_encoder(3)  # bucket 4: compiled already
    assert sorted(k for k in backend.compile_seconds if k[0] == "encoder") == [
        ("encoder", 1), ("encoder", 2), ("encoder", 4)]
    assert backend.fallbacks == {}


def test_failed_compile_warns_and_runs_eagerly(model, tmp_path, fake_compile, caplog):
    _, state = fake_compile

    def broken(module):
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return call

    state["make"] = broken
    with caplog.at_level(logging.WARNING, logger="stemseg_core.backends"):
        backend, runner = _runner(model, tmp_path)
    assert set(backend.fallbacks) == {"encoder", "decoder"}
    assert "compiling the encoder (frames 4) failed (RuntimeError: InvalidCxxCompiler" \
        in caplog.text and "running it eagerly" in caplog.text
    clip = _clip(2, 4)
    got = runner(clip)
    ref = _eager(model, clip)
    assert all(np.array_equal(got[k], ref[k]) for k in ref)  # eager whole batch: the same bits


def test_error_of_a_graph_that_ran_before_is_raised(model, tmp_path, fake_compile):
    """Only a first call (the compile) falls back; later errors (out of memory, ...) are the
    caller's, as in the other backends."""
    _, state = fake_compile
    runs = {"n": 0}

    def flaky(module):
        def call(*args):
            runs["n"] += 1
            if runs["n"] > 2:  # the two warm-up compiles pass, then the graphs fail
                raise RuntimeError("CUDA out of memory")
            return module(*args)
        return call

    state["make"] = flaky
    backend, runner = _runner(model, tmp_path)
    with pytest.raises(RuntimeError, match="out of memory"):
        runner(_clip(3, 4))
    assert backend.fallbacks == {}


def test_cuda_graph_modes_copy_their_outputs(model, tmp_path, fake_compile, monkeypatch):
    """A CUDA graph's replay overwrites its outputs: the backend hands out copies, so features
    the runner keeps for the next clip stay intact."""
    _, state = fake_compile
    static: dict[str, tuple[torch.Tensor, ...]] = {}

    def replaying(module):  # like a CUDA graph: the same output buffers every call
        def call(*args):
            out = module(*args)
            key = type(module).__name__ + str(tuple(args[0].shape))
            if key not in static:
                static[key] = tuple(o.clone() for o in out)
            for buf, o in zip(static[key], out):
                buf.copy_(o)
            return static[key]
        return call

    state["make"] = replaying
    monkeypatch.setenv(MODE_ENV, "reduce-overhead")
    backend, runner = _runner(model, tmp_path)
    assert backend.mode == "reduce-overhead"
    frames = _clip(4, 6)
    first = runner(frames[:, 0:4])
    second = runner(frames[:, 2:6])  # frames 2, 3 from kept features, 4, 5 new
    ref1, ref2 = _eager(model, frames[:, 0:4]), _eager(model, frames[:, 2:6])
    for got, ref in ((first, ref1), (second, ref2)):
        diff = _max_diff(got, ref)
        assert all(diff[k] < FP32_TOL[k] for k in ref), diff


def test_bench_runs_the_inductor_backend(tiny_checkpoint, fake_compile, tmp_path, capsys):
    """`stemseg bench --backend inductor --device cpu` (stand-in compile: the CLI's wiring)."""
    from stemseg_core.cli import main

    rc = main(["bench", "--checkpoint", str(tiny_checkpoint), "--backend", "inductor",
               "--device", "cpu", "--iters", "1", "--warmup", "0",
               "--set", f"inference.engine_cache_dir={tmp_path / 'e'}"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "-- inductor fp32" in out, out
    rows = [line.split() for line in out.splitlines() if line.split()[:2] == ["inductor", "fp32"]]
    assert len(rows) == 1 and float(rows[0][-2]) > 0, out  # frames/s


@pytest.mark.slow
def test_compiled_graphs_match_eager_on_the_cpu(model, tmp_path, monkeypatch):
    """Real torch.compile (mode default) of both graphs, one clip: within FP32_TOL of eager."""
    monkeypatch.delenv(MODE_ENV, raising=False)
    backend, runner = _runner(model, tmp_path)
    assert backend.fallbacks == {}, backend.fallbacks
    assert set(backend.compile_seconds) == {("encoder", 4), ("decoder", 4)}
    clip = _clip(5, 4)
    got = runner(clip)
    ref = _eager(model, clip)
    diff = _max_diff(got, ref)
    assert all(diff[k] < FP32_TOL[k] for k in ref), diff
    assert all(got[k].dtype == np.float32 for k in got)


# -- CUDA (skipped without a GPU: test/conftest.py) ------------------------------------------
#: max |inductor - eager fp32| on CUDA per precision (as test_gpu.py's eager AMP bounds)
CUDA_TOL = {
    "fp32": {"embeddings": 1e-3, "precisions": 5e-2, "seediness": 1e-3, "semantic": 1e-2},
    "fp16": {"embeddings": 0.05, "precisions": 5.0, "seediness": 0.05, "semantic": 0.2},
    "bf16": {"embeddings": 0.2, "precisions": 20.0, "seediness": 0.2, "semantic": 0.5},
}


@pytest.mark.gpu
@pytest.mark.parametrize("precision,mode,clips", [
    ("fp32", "default", [(0, 4), (2, 6)]),
    ("bf16", "default", [(0, 4)]),
    ("fp16", "reduce-overhead", [(0, 4), (2, 6)]),  # CUDA graphs: kept features stay intact
])
def test_cuda_inductor_matches_eager(model, tmp_path, monkeypatch, precision, mode, clips):
    monkeypatch.setenv(MODE_ENV, mode)  # "default" compiles in seconds; the CUDA default
    # (max-autotune-no-cudagraphs) runs in scripts/gpu_check.sh's benchmark
    model = model.cuda()
    backend, runner = _runner(model, tmp_path, "cuda", precision)
    assert backend.fallbacks == {}, backend.fallbacks
    frames = _clip(6, 6)
    for start, end in clips:
        got = runner(frames[:, start:end])
        ref = _eager(model, frames[:, start:end])
        diff = _max_diff(got, ref)
        assert all(diff[k] < CUDA_TOL[precision][k] for k in ref), (precision, mode, diff)
        assert all(got[k].dtype == np.float32 for k in got)
    assert runner.reused == 2 * (len(clips) - 1)
