"""The numpy minimum-cost assignment gives the least total cost (scipy's, where it is unique)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from stemseg_core.inference.assignment import min_cost_assignment


@pytest.mark.parametrize("kind", ["random", "ties", "iou"])
def test_same_total_cost_as_scipy_on_random_matrices(kind):
    rng = np.random.default_rng(("random", "ties", "iou").index(kind))
    for _ in range(300):
        n, m = (int(s) for s in rng.integers(0, 9, 2))
        if kind == "random":
            cost = rng.random((n, m))
        elif kind == "ties":
            cost = rng.integers(0, 3, (n, m)).astype(float)
        else:  # 1 - IoU of clips: mostly no overlap (cost 1)
            cost = 1.0 - np.where(rng.random((n, m)) < 0.7, 0.0, rng.random((n, m)))
        want_r, want_c = linear_sum_assignment(cost)
        rows, cols = min_cost_assignment(cost)
        assert len(rows) == len(cols) == min(n, m)
        assert list(rows) == sorted(set(rows.tolist())) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(cost[want_r, want_c].sum(), abs=1e-9)
        if kind == "random":  # a unique optimum: the same pairs
            assert rows.tolist() == want_r.tolist() and cols.tolist() == want_c.tolist()


def test_small_cases_by_hand():
    rows, cols = min_cost_assignment(np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0],
                                               [3.0, 2.0, 2.0]]))
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]  # 1 + 2 + 2
    rows, cols = min_cost_assignment(np.array([[9.0], [1.0], [5.0]]))  # more rows than cols
    assert rows.tolist() == [1] and cols.tolist() == [0]
    rows, cols = min_cost_assignment(np.zeros((0, 3)))
    assert rows.shape == cols.shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        min_cost_assignment(np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        min_cost_assignment(np.zeros(3))
