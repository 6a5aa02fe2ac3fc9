"""DDP on CPU (gloo): two ranks started by torchrun end with identical weights."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stemseg_core.checkpoint import load_checkpoint

WORKER = Path(__file__).parent / "ddp_worker.py"
REPO = Path(__file__).resolve().parents[3]


def _torchrun(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(WORKER), *map(str, args)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


# Once in ~20 suite runs a gloo rank aborted early ("terminate called without an active
# exception", SIGABRT, 2026-11-25 fresh-clone run); the same test then passed 3/3 at once.
@pytest.mark.flaky(reruns=2)
def test_ddp_two_ranks_identical_weights_and_exact_resume(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _torchrun(a, 4)  # uninterrupted: steps 1-4
    _torchrun(b, 2)  # steps 1-2, then "killed" ...
    _torchrun(b, 4, "resume")  # ... and resumed: steps 3-4
    for run in (a, b):
        c0 = float((run / "checksum_rank0.txt").read_text())
        c1 = float((run / "checksum_rank1.txt").read_text())
        assert c0 == c1
    assert float((a / "checksum_rank0.txt").read_text()) == pytest.approx(
        float((b / "checksum_rank0.txt").read_text()), rel=1e-6)
    _, payload = load_checkpoint(b / "last.pt")
    ts = payload["train_state"]
    assert ts["step"] == 4 and ts["world_size"] == 2 and len(ts["rng"]) == 2
    assert torch.isfinite(sum(v.double().sum() for v in payload["model"].values()))
    la = (a / "losses.csv").read_text().splitlines()
    lb = (b / "losses.csv").read_text().splitlines()
    assert len(la) == len(lb) == 1 + 4  # only rank 0 writes, each step once
    for ra, rb in zip(la[1:], lb[1:]):
        for x, y in zip(ra.split(","), rb.split(",")):
            assert float(x) == pytest.approx(float(y), rel=1e-5)
