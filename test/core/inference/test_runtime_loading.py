"""A tracker without torch (inference/runtime_loading.py): graphs built by a process with torch
run in a child process where torch cannot be imported, with the torch tracker's track IDs,
classes and masks; what is missing there is named with the command that builds it."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from stemseg_core.checkpoint import save_checkpoint
from stemseg_core.config import config_from_dict, load_config
from stemseg_core.inference.graph_build import build_graphs
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_core.model import build_model

H, W = 64, 96

#: Prepended to the child's code: any import of torch fails, as where it is not installed.
NO_TORCH = textwrap.dedent('''
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError("No module named 'torch' (blocked)", name=name)
            return None
    sys.meta_path.insert(0, _NoTorch())
''')

#: The child: a stream through a tracker loaded from the cache; its label images and what it
#: loaded. argv: checkpoint, cache, backend, frames.npy, out.npz
STREAM = textwrap.dedent('''
    import json
    import numpy as np
    from stemseg_core.inference.tracker import StreamingTracker
    ckpt, cache, backend, frames, out = sys.argv[1:6]
    tr = StreamingTracker.from_checkpoint(ckpt, device="cpu", overrides=[
        f"inference.engine_cache_dir={cache}", f"inference.backend={backend}"])
    tr.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0)
    res = [r for i, f in enumerate(np.load(frames)) for r in tr.push(f, i)] + tr.flush()
    np.savez(out, *[np.stack([i.mask for i in r.instances]) if r.instances
                    else np.zeros((0, 1, 1), bool) for r in res])
    maps = open("/proc/self/maps").read()
    print(json.dumps({"ids": [[(i.track_id, i.class_id) for i in r.instances] for r in res],
                      "torch": "torch" in sys.modules, "libtorch": "libtorch" in maps,
                      "model": type(tr.model).__name__}))
''')


def run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH + code, *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def drive() -> np.ndarray:
    """10 frames (H, W, 3) of two colour blocks moving over a noisy background."""
    rng = np.random.default_rng(0)
    frames = []
    for t in range(10):
        img = np.full((H, W, 3), 90, np.uint8) + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
        img[10:40, 5 + 3 * t:35 + 3 * t] = (220, 30, 30)
        img[30:60, 60 - 2 * t:80 - 2 * t] = (30, 30, 220)
        frames.append(img)
    return np.stack(frames)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_override_tuple):
    """A tiny checkpoint (stride-2 refiners: the stem is a feature too), its graphs for the
    drive's size built with torch into a private cache, and the torch tracker's results."""

    tmp = tmp_path_factory.mktemp("runtime")
    d = load_config(None, list(tiny_override_tuple)).to_dict()
    d["model"]["output_stride"] = 2
    cfg = config_from_dict(d)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.refiners.parameters():
        torch.nn.init.normal_(p, std=0.05)
    ckpt = save_checkpoint(tmp / "m.pt", model.state_dict(), cfg)
    cache = tmp / "engines"
    cache.mkdir(mode=0o700)
    over = [f"inference.engine_cache_dir={cache}"]
    trk = StreamingTracker.from_checkpoint(ckpt, device="cpu", load_model=True,
                                           overrides=over + ["inference.backend=openvino"])
    frames = drive()
    from stemseg_core.inference.preprocess import geometry

    geo = geometry(H, W, cfg.input.min_side, cfg.input.max_side)
    build_graphs(trk, "openvino", "fp32", (3, *geo.padded_size), str(cache))  # + ONNX files
    ref = StreamingTracker.from_checkpoint(ckpt, device="cpu",
                                           overrides=over + ["inference.backend=torch"])
    ref.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0)
    results = [r for i, f in enumerate(frames) for r in ref.push(f, i)] + ref.flush()
    np.save(tmp / "frames.npy", frames)
    return {"ckpt": ckpt, "cache": cache, "tmp": tmp, "ref": results,
            "shape": geo.padded_size}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_stream_without_torch_equals_the_torch_tracker(built, backend):
    out = built["tmp"] / f"{backend}.npz"
    done = run_without_torch(STREAM, built["ckpt"], built["cache"], backend,
                             built["tmp"] / "frames.npy", out)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["torch"] is False and got["libtorch"] is False
    assert got["model"] == "NetworkSource"  # no torch model: graphs from the cache
    ref = built["ref"]
    assert sum(len(r.instances) for r in ref) >= 10  # instances to compare
    assert len(got["ids"]) == len(ref)
    masks = np.load(out)
    for k, r in enumerate(ref):
        assert [tuple(x) for x in got["ids"][k]] == [(i.track_id, i.class_id)
                                                     for i in r.instances], (backend, k)
        for i, m in zip(r.instances, masks[f"arr_{k}"]):
            assert (m != i.mask).sum() <= 0.01 * m.size, (backend, k)


def test_missing_graph_without_torch_names_the_export_command(built, tmp_path):
    """A cache with the index but not the graphs of this size: the error names the command
    (with the size) that builds them, and the process never imported torch."""
    code = textwrap.dedent('''
        import numpy as np
        from stemseg_core.inference.tracker import StreamingTracker
        ckpt, cache = sys.argv[1:3]
        tr = StreamingTracker.from_checkpoint(ckpt, device="cpu", overrides=[
            f"inference.engine_cache_dir={cache}", "inference.backend=openvino"])
        try:
            tr.predict_clip([np.zeros((96, 160, 3), np.uint8)] * 4)
        except Exception as e:
            print(type(e).__name__, e)
        print("torch" in sys.modules)
    ''')
    done = run_without_torch(code, built["ckpt"], built["cache"])
    assert done.returncode == 0, done.stderr[-3000:]
    err, imported = done.stdout.strip().splitlines()[-2:]
    assert err.startswith("ArtifactMissing openvino: the encoder graph for model input 96x160 "
                          "is not in the engine cache"), err
    assert (f"stemseg export --checkpoint {built['ckpt']} --format openvino --height 96 "
            f"--width 160 --clip-length 4 --engine-cache-dir {built['cache']}") in err
    assert imported == "False"


def test_no_index_without_torch_names_the_export_command(built, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    code = textwrap.dedent('''
        from stemseg_core.inference.tracker import StreamingTracker
        try:
            StreamingTracker.from_checkpoint(sys.argv[1], device="cpu", overrides=[
                f"inference.engine_cache_dir={sys.argv[2]}", "inference.backend=onnxruntime"])
        except Exception as e:
            print(type(e).__name__, e)
    ''')
    done = run_without_torch(code, built["ckpt"], empty)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.strip()
    assert out.startswith(f"ArtifactMissing {built['ckpt']}: the engine cache {empty} has no "
                          f"index for this checkpoint"), out
    assert "torch is not installed here" in out and "stemseg export --checkpoint" in out


def test_cli_without_torch_lists_every_command_and_names_the_extra():
    """A runtime-only install: `stemseg --help` lists all commands, `infer --help` works, a
    command that needs torch says which install brings it."""
    code = textwrap.dedent('''
        import contextlib, io
        from stemseg_core.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(["--help"])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["infer", "--help"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(["import-official", "--checkpoint", "x", "--dataset", "y", "--out", "z"])
        print(all(c in out.getvalue() for c in ("infer", "train", "import-official")), rc)
        print(err.getvalue().strip())
        print("torch" in sys.modules)
    ''')
    done = run_without_torch(code)
    assert done.returncode == 0, done.stderr[-3000:]
    listed, msg, imported = done.stdout.strip().splitlines()[-3:]
    assert listed == "True 2"
    assert msg.startswith("stemseg import-official: needs torch") and "stemseg[train]" in msg
    assert imported == "False"
