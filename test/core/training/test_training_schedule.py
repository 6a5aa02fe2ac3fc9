"""LR schedule: constant, then exponential decay reaching lr * factor at max_steps."""
import math

import pytest
import torch

from stemseg_core.training.sampling import step_indices
from stemseg_core.training.schedule import build_scheduler, lr_factor


def test_lr_factor_known_steps():
    f = lambda s: lr_factor(s, max_steps=100, decay_start=50, decay_factor=0.1)  # noqa: E731
    assert f(0) == 1.0
    assert f(50) == 1.0
    assert f(75) == pytest.approx(math.sqrt(0.1))
    assert f(100) == pytest.approx(0.1)
    assert f(150) == pytest.approx(0.1)  # clamped after the end
    assert lr_factor(10, 100, 200, 0.1) == 1.0  # decay never starts


def test_lambda_lr_follows_factor():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3)
    sched = build_scheduler(opt, max_steps=10, decay_start=4, decay_factor=0.1)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == [pytest.approx(1e-3)] * 5
    assert lrs[7] == pytest.approx(1e-3 * 0.1 ** 0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_step_indices_pure_disjoint_and_covering():
    a = step_indices(7, 3, 1, 2, 2, 10)
    assert a == step_indices(7, 3, 1, 2, 2, 10)
    # one epoch of 10 clips = 2.5 steps of 2 ranks x 2 clips; the first 2 steps are disjoint
    seen = [i for s in range(2) for r in range(2) for i in step_indices(7, s, r, 2, 2, 10)]
    assert len(set(seen)) == 8
    assert all(0 <= i < 10 for i in seen)


def test_step_indices_with_epoch_encode_the_epoch():
    n = 10
    plain = [i for s in range(10) for i in step_indices(7, s, 0, 1, 2, n)]
    coded = [i for s in range(10) for i in step_indices(7, s, 0, 1, 2, n, with_epoch=True)]
    assert [c % n for c in coded] == plain
    assert [c // n for c in coded] == [k // n for k in range(20)]  # epochs 0 then 1
