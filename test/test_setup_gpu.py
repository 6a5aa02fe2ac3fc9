"""scripts/setup.sh on an NVIDIA machine without a route to TensorRT's wheels: setup completes
and says the TensorRT step was skipped and why (issue 41).

It runs the real script on this checkout with a stand-in ``nvidia-smi`` on PATH. With the
checkout already set up (``make test`` runs ``make setup`` first) every stamped step is skipped
and only the TensorRT step runs. pip is shut off from every index and wheel folder (no config
files, ``--no-index``, an empty find-links folder), so the step fails fast and cannot install or
remove anything; the test checks that the venv's site-packages are unchanged and puts back the
step's stamp and log.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
STAMPS = ("deps", "lib", "colcon")

pytestmark = pytest.mark.skipif(
    not all((VENV / f".stamp-{s}").is_file() for s in STAMPS)
    or not (ROOT / "install" / "setup.bash").is_file(),
    reason="needs the checkout set up first (make setup: .venv stamps and install/); the test "
           "runs only the TensorRT step of scripts/setup.sh")

NVIDIA_SMI = """#!/bin/sh
# stand-in: one GPU, as the real nvidia-smi -L prints it
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-000000000000)"
"""


def _site_packages() -> set[str]:
    return {p.name for p in VENV.glob("lib/python3*/site-packages/*")}


@pytest.fixture
def offline_gpu_env(tmp_path):
    """Env for setup.sh: a stand-in nvidia-smi first on PATH, pip with nothing to install from.
    Puts back the TensorRT stamp and log setup.sh writes."""
    bindir, empty = tmp_path / "bin", tmp_path / "empty-index"
    bindir.mkdir()
    empty.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(NVIDIA_SMI)
    smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "STEMSEG_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
               PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty),
               PIP_INDEX_URL=empty.as_uri(), STEMSEG_NVIDIA_INDEX=empty.as_uri())
    kept = {}
    for f in (VENV / ".stamp-trt", ROOT / "log" / "setup-gpu.txt"):
        if f.is_file():
            kept[f] = tmp_path / f"kept-{f.name}"
            shutil.copy2(f, kept[f])
    yield env
    for f in (VENV / ".stamp-trt", ROOT / "log" / "setup-gpu.txt"):
        if f in kept:
            shutil.copy2(kept[f], f)
        else:
            f.unlink(missing_ok=True)


def _setup(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def test_setup_completes_and_says_tensorrt_was_skipped_and_why(offline_gpu_env):
    before = _site_packages()
    r = _setup(offline_gpu_env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "NVIDIA GPU found" in out, out
    assert "TensorRT step skipped: pip could not install torch-tensorrt==2.14.0" in out, out
    # the reason is pip's own last error line, and the way to retry is named
    assert "No matching distribution found for torch-tensorrt" in out, out
    assert "STEMSEG_RETRY_TRT=1" in out and "STEMSEG_NVIDIA_INDEX" in out, out
    assert "done. Activate with" in out.splitlines()[-1], out
    assert _site_packages() == before

    # A second run does not retry the same failure (make test runs make setup every time) ...
    again = _setup(offline_gpu_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "failed before with the same inputs" in again.stdout, again.stdout
    assert "NVIDIA GPU found" not in again.stdout
    # ... and STEMSEG_SKIP_TRT=1 skips the step, saying so.
    skipped = _setup({**offline_gpu_env, "STEMSEG_SKIP_TRT": "1"})
    assert skipped.returncode == 0
    assert "TensorRT step skipped: STEMSEG_SKIP_TRT=1" in skipped.stdout, skipped.stdout


def test_setup_says_nothing_of_tensorrt_without_a_gpu(offline_gpu_env, tmp_path):
    smi = tmp_path / "bin" / "nvidia-smi"  # an nvidia-smi that finds no GPU (driver missing)
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    r = _setup(offline_gpu_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TensorRT" not in r.stdout and "NVIDIA GPU found" not in r.stdout


def test_gpu_check_dry_run_lists_steps_limits_and_files(tmp_path):
    """scripts/gpu_check.sh for the lent GPU machine (600 s a command, 8 files back): its dry
    run lists each step with its limit and the files it writes, runs nothing, exits 0."""
    import re

    out = tmp_path / "out"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=tmp_path,
                       env={**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(out)},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    steps = dict(re.findall(r"^  step (\S+)\s+(\d+) s ", r.stdout, re.M))
    assert list(steps)[:2] == ["probe", "pytest_gpu"], r.stdout  # CUDA first, then the tests
    assert {"bench_torch", "bench_inductor_bf16", "bench_inductor_fp16", "bench_tensorrt",
            "summary"} <= set(steps), r.stdout
    total = sum(int(v) for v in steps.values())
    assert total <= 480, steps
    assert f"time limits {total} s in all" in r.stdout
    files = re.search(r"^files under \$OUT \((\d+), at most 8\): (.*)$", r.stdout, re.M)
    names = files.group(2).split()
    assert len(names) == int(files.group(1)) <= 8
    assert "summary.json" in names and "gpu_check.log" in names
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    assert "--config config/model/official_kitti_mots.yaml --height 375 --width 1242 " \
           "--clip-length 8 --device cuda" in r.stdout
    assert not out.exists()  # a dry run writes nothing
