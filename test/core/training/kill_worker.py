"""Trains the fake model and kills itself with SIGKILL at a chosen point (or waits for the test
to kill it). Usage: kill_worker.py OUT POINT, POINT one of
  save:N     in the middle of the N-th torch.save (half the file written, not yet renamed)
  replace:N  just before the N-th os.replace (temporary file complete, not yet renamed)
  step:N     after step N is logged, before its checkpoint is written
  none       no self-kill (the test kills it from outside)
"""
import io
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from training_fakes import KILL_TEST_OVERRIDES, fake_config, make_trainer  # noqa: E402

from stemseg_core.training.hooks import HookBase  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAfterStep(HookBase):
    def __init__(self, n: int):
        self.n = n

    def after_step(self, trainer, info):
        if info.step == self.n:
            die()


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, point = Path(sys.argv[1]), sys.argv[2]
    mode, _, n = point.partition(":")
    calls = {"n": 0}

    def nth() -> bool:
        calls["n"] += 1
        return calls["n"] == int(n)

    if mode == "save":
        real_save = torch.save

        def save(obj, f, *a, **kw):
            if nth():
                buf = io.BytesIO()
                real_save(obj, buf)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                die()
            return real_save(obj, f, *a, **kw)

        torch.save = save
    elif mode == "replace":
        real_replace = os.replace

        def replace(src, dst):
            if nth():
                die()
            return real_replace(src, dst)

        os.replace = replace
    t = make_trainer(out, fake_config(KILL_TEST_OVERRIDES), keep_checkpoints=2)
    if mode == "step":
        t.register_hooks([KillAfterStep(int(n))])
    t.train()
