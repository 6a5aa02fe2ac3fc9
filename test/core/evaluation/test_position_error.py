"""3-D position error against depth ground truth (stemseg_core/evaluation/position_error.py)."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.evaluation.position_error import (
    PositionErrors,
    markdown,
    measure_frame,
    summarize,
)

K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])


def _scene():
    """A wall at 10 m with a box at 5 m; masks of the box (car) and of a wall patch (ped)."""
    depth = np.full((48, 64), 10_000, np.uint16)
    car = np.zeros((48, 64), bool)
    car[10:20, 10:30] = True
    depth[car] = 5_000
    ped = np.zeros((48, 64), bool)
    ped[30:44, 40:46] = True
    return depth, car, ped


def test_errors_are_metres_from_the_gt_mask_lifted_with_the_true_depth():
    depth, car, ped = _scene()
    # the reference is the GT mask lifted with the depth; our guesses are off by 0.3 / 0.4 m
    from stemseg_core.geometry import lift_from_depth

    ref_car, ref_ped = (o.position for o in lift_from_depth([car, ped], depth, K))
    assert ref_car[2] == pytest.approx(5.0) and ref_ped[2] == pytest.approx(10.0)
    pe = measure_frame([car, ped, np.zeros_like(car)],
                       [ref_car + [0, 0, 0.3], ref_ped + [0.4, 0, 0], None],
                       [car, ped], ["car", "pedestrian"], depth, K)
    assert pe.instances == 3 and pe.with_position == 2
    got = {c: (e, d) for c, e, d in pe.errors}
    assert got["car"][0] == pytest.approx(0.3) and got["pedestrian"][0] == pytest.approx(0.4)
    assert got["car"][1] == pytest.approx(np.linalg.norm(ref_car))


def test_an_instance_overlapping_ground_truth_less_than_half_is_not_scored():
    depth, car, _ = _scene()
    shifted = np.roll(car, 12, axis=1)  # IoU 8/32 < 0.5
    pe = measure_frame([shifted], [np.zeros(3)], [car], ["car"], depth, K)
    assert pe.errors == [] and pe.instances == pe.with_position == 1


def test_summary_per_class_median_p90_percent_and_share_with_a_position():
    pe = PositionErrors([("car", e, 10.0) for e in (0.1, 0.2, 0.3, 0.4, 1.0)]
                        + [("pedestrian", 0.5, 5.0)], instances=8, with_position=6)
    s = summarize(pe)
    assert s["car"]["n"] == 5 and s["car"]["median_m"] == pytest.approx(0.3)
    assert s["car"]["p90_m"] == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4, 1.0], 90))
    assert s["car"]["median_pct"] == pytest.approx(3.0)
    assert s["pedestrian"]["median_pct"] == pytest.approx(10.0)
    assert s["all"]["n"] == 6
    assert s["coverage"]["share_with_position"] == pytest.approx(0.75)
    text = markdown(s, "test")
    assert "| car | 5 | 0.300 |" in text and "6 of 8 (75 %)" in text
