"""Hooks around the loop: evaluation on a period, SIGTERM -> checkpoint and stop, custom hooks."""
import os
import signal

import torch
from training_fakes import fake_config, make_trainer

from stemseg_core.checkpoint import load_checkpoint
from stemseg_core.training.hooks import EvalHook, HookBase, PeriodicCheckpointer


def test_eval_hook_runs_on_its_period_in_eval_mode_without_changing_training(tmp_path):
    torch.set_num_threads(1)
    plain = make_trainer(tmp_path / "plain")
    plain.train()
    seen = []

    def evaluate(trainer):
        seen.append(trainer.model.training)
        return {"weight_sum": sum(float(p.sum()) for p in trainer.model.parameters()),
                "step": trainer.step}

    t = make_trainer(tmp_path / "eval")
    hook = EvalHook(4, evaluate)
    t.register_hooks([hook])
    assert isinstance(t.hooks[-1], PeriodicCheckpointer)  # the checkpointer stays last
    t.train()
    assert [s for s, _ in hook.results] == [4, 6]  # period 4, and the last step
    assert [v["step"] for _, v in hook.results] == [4, 6]
    assert seen == [False, False] and t.model.training  # eval mode only inside the call
    assert [h["total"] for h in t.history] == [h["total"] for h in plain.history]


class SendSigterm(HookBase):
    def after_step(self, trainer, info):
        if info.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_finishes_the_step_checkpoints_and_stops(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    t = make_trainer(tmp_path / "run", fake_config(["train.checkpoint_every=100"]))
    t.register_hooks([SendSigterm()])
    res = t.train()
    # the signal arrives after step 2's hooks; step 3 carries the stop flag and checkpoints
    assert res.stopped_early and res.step == 3
    assert load_checkpoint(tmp_path / "run" / "last.pt")[1]["train_state"]["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
