"""Checkpoint rotation and crash safety: a run killed with SIGKILL at any point (mid-write,
before a rename, between steps, at a random moment) resumes from its last complete checkpoint
with the same loss curve as an uninterrupted run; damaged files are skipped; format-1 training
checkpoints resume exactly."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_fakes import KILL_TEST_OVERRIDES, fake_config, make_trainer

from stemseg_core.checkpoint import (
    DamagedCheckpointError,
    atomic_torch_save,
    load_checkpoint,
)
from stemseg_core.training.hooks import HookBase
from stemseg_core.training.run_checkpoints import find_resume_checkpoint
from stemseg_core.training.trainer import TrainingError

WORKER = Path(__file__).parent / "kill_worker.py"
REPO = Path(__file__).resolve().parents[3]


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "losses.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _step_files(run: Path) -> list[str]:
    return sorted((p.name for p in run.glob("step_*.pt")),
                  key=lambda n: int(n[len("step_"):-len(".pt")]))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The losses.csv rows of the kill tests' run, never interrupted (1 thread, as the worker)."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("full") / "run"
    make_trainer(run, fake_config(KILL_TEST_OVERRIDES), keep_checkpoints=2).train()
    return _rows(run)


def _resume_and_compare(run: Path, expected: list[dict[str, str]]) -> int:
    """Resume `run` in this process to the end; the log must equal `expected` exactly."""
    torch.set_num_threads(1)
    t = make_trainer(run, fake_config(KILL_TEST_OVERRIDES), keep_checkpoints=2, resume=True)
    resumed_at = t.step
    t.train()
    assert _rows(run) == expected  # every loss and LR of every step, as written (9 digits)
    assert not list(run.glob("*.tmp"))
    assert load_checkpoint(run / "last.pt")[1]["train_state"]["step"] == 10
    return resumed_at


def _worker(run: Path, point: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(WORKER), str(run), point], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("point, resumes_at", [
    ("save:4", 3),  # half of step 4's file written: step 3 is the last complete checkpoint
    ("replace:5", 2),  # step_3.pt complete but not renamed: last.pt is still step 2
    ("replace:6", 3),  # step_3.pt in place, last.pt still step 2: the newer step_3.pt is used
    ("step:5", 4),  # step 5 logged, no checkpoint yet: its log row is dropped and redone
])
def test_sigkill_at_a_write_point_resumes_exactly(tmp_path, uninterrupted, point, resumes_at):
    run = tmp_path / "run"
    p = _worker(run, point)
    out, _ = p.communicate(timeout=240)
    assert p.returncode == -signal.SIGKILL, out.decode()[-2000:]
    if point.startswith(("save", "replace:5")):
        assert list(run.glob("*.tmp")), "the kill should have left a temporary file"
    assert _resume_and_compare(run, uninterrupted) == resumes_at


def test_sigkill_at_a_random_moment_resumes_exactly(tmp_path, uninterrupted):
    run = tmp_path / "run"
    p = _worker(run, "none")
    deadline = time.time() + 120
    while not (run / "losses.csv").is_file() or len(_rows(run)) < 4:
        assert time.time() < deadline and p.poll() is None, "worker did not get to step 4"
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert 3 <= _resume_and_compare(run, uninterrupted) < 10


class RecordStepFiles(HookBase):
    def __init__(self):
        self.seen: list[list[str]] = []

    def after_step(self, trainer, info):
        self.seen.append(_step_files(trainer.out))


def test_rotation_keeps_the_newest_k_and_deletes_older_ones(tmp_path):
    run = tmp_path / "run"
    t = make_trainer(run, fake_config(["train.checkpoint_every=1"]), keep_checkpoints=2)
    rec = RecordStepFiles()
    t.hooks.append(rec)  # after the checkpointer: sees the files of this step
    t.train()
    assert rec.seen == [["step_1.pt"], ["step_1.pt", "step_2.pt"], ["step_2.pt", "step_3.pt"],
                        ["step_3.pt", "step_4.pt"], ["step_4.pt", "step_5.pt"],
                        ["step_4.pt", "step_5.pt"]]  # the final step writes last.pt only
    assert load_checkpoint(run / "last.pt")[1]["train_state"]["step"] == 6
    assert load_checkpoint(run / "step_5.pt")[1]["train_state"]["step"] == 5


def test_damaged_last_falls_back_to_the_newest_intact_step_file(tmp_path, caplog):
    torch.set_num_threads(1)
    full = tmp_path / "full"
    make_trainer(full, fake_config(["train.checkpoint_every=1"]), keep_checkpoints=2).train()
    run = tmp_path / "run"
    make_trainer(run, fake_config(["train.checkpoint_every=1"]), keep_checkpoints=2,
                 stop_at=4).train()
    # last.pt (step 4) and step_4.pt are the same file: damage both, step_3.pt is next
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").unlink()
    (run / "last.pt").write_bytes(data[:-1000])
    (run / "step_4.pt").unlink()
    (run / "step_4.pt").write_bytes(data[: len(data) // 3])
    path, _, payload = find_resume_checkpoint(run)
    assert path.name == "step_3.pt" and payload["train_state"]["step"] == 3
    assert "last.pt" in caplog.text and "step_4.pt" in caplog.text
    t = make_trainer(run, fake_config(["train.checkpoint_every=1"]), keep_checkpoints=2,
                     resume=True)
    assert t.step == 3
    t.train()
    assert _rows(run) == _rows(full)


def test_every_checkpoint_damaged_is_an_error(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, keep_checkpoints=0, stop_at=3).train()
    (run / "last.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(DamagedCheckpointError):
        load_checkpoint(run / "last.pt")
    with pytest.raises(TrainingError, match="every checkpoint is damaged"):
        make_trainer(run, resume=True)


def test_a_cut_log_line_is_dropped_on_resume(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, stop_at=3).train()
    with (run / "losses.csv").open("a") as f:
        f.write("4,0.51")  # a kill in the middle of writing step 4's row
    t = make_trainer(run, resume=True)
    t.train()
    assert [int(r["step"]) for r in _rows(run)] == [1, 2, 3, 4, 5, 6]
    assert all(r["lr"] for r in _rows(run))


def test_version_1_training_checkpoint_resumes_exactly(tmp_path):
    """A run checkpointed by the previous format (numpy RNG state as a tuple with an array, no
    digest) resumes with the same loss curve as an uninterrupted run."""
    import numpy as np

    torch.set_num_threads(1)
    full, run = tmp_path / "full", tmp_path / "run"
    make_trainer(full).train()
    make_trainer(run, stop_at=3).train()
    payload = torch.load(run / "last.pt", weights_only=True)
    for r in payload["train_state"]["rng"]:
        s = r["numpy"]
        r["numpy"] = (s["bit_generator"], s["key"].numpy().astype(np.uint32), s["pos"],
                      s["has_gauss"], s["cached_gaussian"])
    payload["version"] = 1
    del payload["digest"]
    atomic_torch_save(payload, run / "last.pt")
    t = make_trainer(run, resume=True)
    assert t.step == 3
    t.train()
    a, b = _rows(full), _rows(run)
    assert [r["step"] for r in b] == [str(s) for s in range(1, 7)] and a == b
