"""Trainer: learning, exact resume, checkpoint contents, logs, NaN guard (fake model + data)."""
import csv

import pytest
import torch
from training_fakes import FakeModel, fake_config, make_trainer, weights_checksum

from stemseg_core.checkpoint import load_checkpoint
from stemseg_core.training.trainer import MAX_CONSECUTIVE_BAD_STEPS, TrainingError


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_loss_decreases_on_one_repeated_clip(tmp_path):
    cfg = fake_config(["train.max_steps=25", "train.lr_decay_start=25", "train.batch_size=1",
                       "train.checkpoint_every=100"])
    res = make_trainer(tmp_path / "run", cfg, n=1, keep_checkpoints=0).train()
    totals = [h["total"] for h in res.history]
    assert len(totals) == 25
    assert sum(totals[-5:]) / 5 < 0.7 * sum(totals[:5]) / 5
    assert (tmp_path / "run" / "last.pt").is_file()
    assert not list((tmp_path / "run").glob("step_*.pt"))


def test_resume_equals_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)  # identical reductions in both runs
    full = make_trainer(tmp_path / "full")
    full.train()

    first = make_trainer(tmp_path / "split", stop_at=3)
    r1 = first.train()
    assert r1.step == 3 and r1.stopped_early
    # fresh Trainer and model object, as in a new process
    second = make_trainer(tmp_path / "split", resume=True)
    assert second.step == 3
    second.train()

    a, b = _csv(tmp_path / "full" / "losses.csv"), _csv(tmp_path / "split" / "losses.csv")
    assert [r["step"] for r in b] == [str(s) for s in range(1, 7)]
    for ra, rb in zip(a, b):
        for k in ("total", "bce", "aux", "lr"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-6, abs=1e-7), (ra, rb)
    sa, sb = full.model.state_dict(), second.model.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-6, atol=1e-7)
    assert weights_checksum(full.model) == pytest.approx(weights_checksum(second.model),
                                                         rel=1e-6)


def test_checkpoint_format_and_run_files(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, keep_checkpoints=1).train()
    cfg, payload = load_checkpoint(run / "last.pt")
    assert payload["format"] == "stemseg-checkpoint" and payload["version"] == 2
    ts = payload["train_state"]
    for key in ("step", "optimizer", "scheduler", "scaler", "rng", "sampler", "world_size"):
        assert key in ts
    assert ts["step"] == 6 and ts["sampler"]["next_step"] == 6
    assert set(ts["rng"][0]) >= {"python", "numpy", "torch"}
    assert cfg.train.max_steps == 6
    assert (run / "config.yaml").is_file() and (run / "losses.csv").is_file()
    assert (run / "loss.png").is_file()
    # the final step writes last.pt only (deletion: test_training_resume.py)
    assert [p.name for p in run.glob("step_*.pt")] == ["step_3.pt"]
    rows = _csv(run / "losses.csv")
    assert len(rows) == 6 and float(rows[-1]["lr"]) < float(rows[0]["lr"])


def test_resume_drops_log_rows_after_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, stop_at=4).train()  # checkpoint at 3 and at the stop (4)
    # simulate a kill after step 4 was logged but before its checkpoint: rewind last.pt to 3
    (run / "step_3.pt").replace(run / "last.pt")
    (run / "step_4.pt").unlink()
    t = make_trainer(run, resume=True)
    assert t.step == 3
    t.train()
    assert [int(r["step"]) for r in _csv(run / "losses.csv")] == [1, 2, 3, 4, 5, 6]


def test_nan_guard_skips_then_aborts(tmp_path):
    cfg = fake_config(["train.max_steps=20"])
    t = make_trainer(tmp_path / "run", cfg, model_factory=lambda c: FakeModel(nan_after=2))
    with pytest.raises(TrainingError, match="non-finite"):
        t.train()
    assert t.skipped_steps == MAX_CONSECUTIVE_BAD_STEPS
    assert t.step == 2 + MAX_CONSECUTIVE_BAD_STEPS - 1  # the aborting step is not counted


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        make_trainer(tmp_path / "none", resume=True)
