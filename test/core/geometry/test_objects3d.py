"""3-D lifting of masks with known geometry: boxes at known distances, moving boxes."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.geometry import (
    VelocityFilter,
    depth_to_metres,
    depth_to_mm,
    label_grid,
    lidar_depth_image,
    lift_from_depth,
    lift_from_points,
)

H, W, F = 240, 320, 200.0
K = np.array([[F, 0, 160.0], [0, F, 120.0], [0, 0, 1]])


def _scene(x0, x1, y0, y1, z, background=40.0):
    """Depth image (m) of a fronto-parallel plate [x0, x1] x [y0, y1] at depth z in front of a
    wall at ``background``; returns (depth, mask of the plate)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = (u - K[0, 2]) / F * z
    y = (v - K[1, 2]) / F * z
    mask = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    depth = np.where(mask, z, background).astype(np.float32)
    return depth, mask


def test_plate_position_and_size_from_depth():
    depth, mask = _scene(-1.0, 1.0, -0.5, 0.7, 10.0)
    (obj,) = lift_from_depth([mask], depth, K)
    assert obj.has_position
    assert obj.position == pytest.approx([0.0, 0.1, 10.0], abs=0.03)
    assert obj.size[:2] == pytest.approx([2.0, 1.2], rel=0.05)
    assert obj.size[2] == pytest.approx(0.0, abs=1e-6)


def test_millimetre_depth_and_projection_matrix_give_the_same():
    depth, mask = _scene(1.0, 2.0, 0.0, 1.5, 7.5)
    P = np.concatenate([K, np.zeros((3, 1))], 1)
    (a,) = lift_from_depth([mask], depth, K)
    (b,) = lift_from_depth([mask], depth_to_mm(depth), P)
    assert np.allclose(a.position, b.position, atol=1e-3)
    assert a.position == pytest.approx([1.5, 0.75, 7.5], abs=0.03)


def test_mask_edge_bleed_does_not_move_the_position_or_size():
    depth, mask = _scene(-1.0, 1.0, -1.0, 1.0, 12.0, background=30.0)
    grown = np.zeros_like(mask)  # the mask 3 px too wide: background pixels at its edges
    ys, xs = np.nonzero(mask)
    grown[ys.min() - 3:ys.max() + 4, xs.min() - 3:xs.max() + 4] = True
    (obj,) = lift_from_depth([grown], depth, K)
    assert obj.position[2] == pytest.approx(12.0, abs=1e-3)
    assert obj.size[2] == pytest.approx(0.0, abs=1e-6)


def test_two_instances_and_no_valid_depth():
    d1, m1 = _scene(-3.0, -1.0, 0.0, 1.5, 8.0)
    d2, m2 = _scene(1.0, 2.0, -1.0, 1.0, 20.0)
    depth = np.where(m1, d1, d2)
    hole = np.zeros((H, W), bool)
    hole[5:20, 5:20] = True
    depth[hole] = 0  # no return where the third mask is
    a, b, c = lift_from_depth([m1, m2, hole], depth_to_mm(depth), K)
    assert a.position[2] == pytest.approx(8.0, abs=0.01)
    assert b.position[2] == pytest.approx(20.0, abs=0.01)
    assert b.position[0] == pytest.approx(1.5, abs=0.1)
    assert not c.has_position and np.isnan(c.position).all() and c.num_points == 0


def test_depth_of_another_resolution_is_sampled_at_the_same_place():
    depth, mask = _scene(-1.0, 1.0, -0.5, 0.5, 6.0)
    small = depth[::2, ::2]
    (obj,) = lift_from_depth([mask], small, K)
    assert obj.position[2] == pytest.approx(6.0, abs=1e-3)


def test_label_grid_samples_every_step():
    m = np.zeros((10, 10), bool)
    m[4:6, 4:6] = True
    lab = label_grid([m], 2)
    assert lab.shape == (5, 5) and lab.sum() == 1 and lab[2, 2] == 1
    with pytest.raises(ValueError, match="mask 1 is 5x5"):
        label_grid([m, np.zeros((5, 5), bool)], 2)


def _velo_to_cam():
    R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    return np.concatenate([R, np.array([[0.0], [-0.08], [-0.27]])], 1)


def test_box_position_from_lidar_points_inside_the_mask():
    # a 2 x 1.5 m plate at 15 m ahead and 1 m right (camera frame), sampled by LiDAR points,
    # plus a wall at 40 m behind it
    T = _velo_to_cam()
    xs, ys = np.meshgrid(np.linspace(0.0, 2.0, 21), np.linspace(-0.5, 1.0, 16))
    plate = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 15.0)], 1)
    wx, wy = np.meshgrid(np.linspace(-20, 20, 81), np.linspace(-3, 2, 11))
    wall = np.stack([wx.ravel(), wy.ravel(), np.full(wx.size, 40.0)], 1)
    cam = np.concatenate([plate, wall])
    velo = (cam - T[:, 3]) @ T[:, :3]  # inverse of cam = R velo + t
    pts = np.concatenate([velo, np.full((len(velo), 1), 0.5)], 1)
    _, mask = _scene(0.0, 2.0, -0.5, 1.0, 15.0)
    (obj,) = lift_from_points([mask], pts, T, K)
    assert obj.has_position and obj.num_points >= 200
    assert obj.position == pytest.approx([1.0, 0.25, 15.0], abs=0.1)
    assert obj.size[:2] == pytest.approx([2.0, 1.5], rel=0.1)
    sparse = lidar_depth_image(pts, T, K, (H, W))
    assert np.nanmin(sparse) == pytest.approx(15.0, abs=1e-4)


def test_velocity_of_a_moving_box():
    vf = VelocityFilter()
    v_true = np.array([1.5, 0.0, -4.0])
    rng = np.random.default_rng(0)
    has, v = vf.update(7, np.array([2.0, 0.5, 30.0]), 0.0)
    assert not has and not v.any()
    for k in range(1, 31):
        p = np.array([2.0, 0.5, 30.0]) + v_true * k * 0.1
        has, v = vf.update(7, p + rng.normal(0, 0.05, 3), k * 0.1)
        assert has
    assert v == pytest.approx(v_true, abs=0.4)
    # noiseless: exact from the second position on
    vf2 = VelocityFilter()
    vf2.update(1, np.zeros(3), 10.0)
    for k in range(1, 5):
        has, v = vf2.update(1, v_true * k * 0.25, 10.0 + k * 0.25)
        assert v == pytest.approx(v_true, abs=1e-9)


def test_velocity_restarts_after_a_gap_or_a_jump():
    vf = VelocityFilter(max_gap_s=0.5, max_jump_m=5.0)
    vf.update(1, np.zeros(3), 0.0)
    assert vf.update(1, np.ones(3) * 0.1, 0.1)[0]
    assert not vf.update(1, np.ones(3) * 0.2, 1.0)[0]  # 0.9 s gap
    assert not vf.update(1, np.array([0.0, 0.0, 30.0]), 1.1)[0]  # 30 m jump
    vf.forget(keep=set())
    assert not vf.tracks


def test_depth_units():
    mm = np.array([[0, 1500], [65535, 2]], np.uint16)
    m = depth_to_metres(mm)
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.5)
    assert np.array_equal(depth_to_mm(np.array([[np.nan, 1.5], [70.0, 0.002]])),
                          np.array([[0, 1500], [0, 2]]))
    with pytest.raises(ValueError, match="int32"):
        depth_to_metres(np.zeros((2, 2), np.int32))


def test_track_lifter_moving_plate_and_frames_without_depth():
    from types import SimpleNamespace

    from stemseg_core.geometry import TrackLifter

    lifter = TrackLifter()
    v_true = np.array([0.5, 0.0, -2.0])  # m/s: to the right and closer
    for k in range(6):
        cx, z = -1.0 + v_true[0] * 0.1 * k, 12.0 + v_true[2] * 0.1 * k
        depth, mask = _scene(cx - 1.0, cx + 1.0, -0.5, 0.5, z)
        (tr,) = lifter.update([SimpleNamespace(track_id=4, mask=mask)], 0.1 * k,
                              depth=depth_to_mm(depth), K=K)
        assert tr.track_id == 4 and tr.object.has_position
        assert tr.object.position[2] == pytest.approx(z, abs=0.01)
        assert tr.has_velocity == (k > 0)
    # grid sampling quantises the plate's x edges a little: the velocity within 0.15 m/s
    assert tr.velocity == pytest.approx(v_true, abs=0.15)
    (tr,) = lifter.update([SimpleNamespace(track_id=4, mask=mask)], 0.6)  # no depth partner
    assert not tr.object.has_position and not tr.has_velocity
