"""LiDAR -> rectified camera 2: P2 @ R_rect @ Tr, and the composed 4x4 that K alone projects."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.data.kitti_calib import (
    camera2_offset,
    lidar_to_camera2,
    projection_of,
    read_kitti_calib,
    rectification_of,
)
from stemseg_core.data.kitti_camera import velo_to_cam_of

# Hand-made geometry, every step computable on paper:
# Tr: camera 0 = (-y, -z, x) of the LiDAR + (0, 0.1, -0.3)
TR = np.array([[0, -1, 0, 0.0], [0, 0, -1, 0.1], [1, 0, 0, -0.3]], float)
# R_rect: 90 deg about the optical axis, (x, y, z) -> (-y, x, z)
R_RECT = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float)
# P2 = K [I | t], K: f 500, c (300, 100); t = (0.5, 0.02, 0.01) -> last column (253, 11, 0.01)
P2 = np.array([[500, 0, 300, 253], [0, 500, 100, 11], [0, 0, 1, 0.01]], float)
X_VELO = np.array([20.3, -1.0, 0.9])
# Tr x = (1, -0.9, 20.3) + (0, 0.1, -0.3) = (1, -0.8, 20); R_rect: (0.8, 1, 20);
# P2: (400 + 6000 + 253, 500 + 2000 + 11, 20 + 0.01) = (6653, 2511, 20.01)
HAND_PIXEL = (6653 / 20.01, 2511 / 20.01)


def _row(key, m, colon=True):
    return f"{key}{':' if colon else ''} " + " ".join(f"{v:.12e}" for v in np.ravel(m)) + "\n"


def _project_with_K(T, K, x):
    c = T[:3, :3] @ x + T[:3, 3]
    return K[0, 0] * c[0] / c[2] + K[0, 2], K[1, 1] * c[1] / c[2] + K[1, 2]


def _calib():
    return {"P2": P2, "R_rect": R_RECT, "Tr_velo_cam": TR}


def test_kitti_chain_lands_on_the_hand_computed_pixel():
    u, v, w = P2 @ np.r_[R_RECT @ (TR @ np.r_[X_VELO, 1]), 1]
    assert (u / w, v / w) == pytest.approx(HAND_PIXEL, abs=1e-6)


def test_composed_transform_with_K_alone_lands_where_P2_R_rect_Tr_does():
    T = lidar_to_camera2(_calib())
    assert T.shape == (4, 4) and np.array_equal(T[3], [0, 0, 0, 1])
    np.testing.assert_allclose(camera2_offset(P2), [0.5, 0.02, 0.01], atol=1e-12)
    assert _project_with_K(T, P2[:, :3], X_VELO) == pytest.approx(HAND_PIXEL, abs=1e-6)
    # Tr alone (what the node used before): several pixels off, so the check above can fail
    wrong = _project_with_K(np.r_[TR, [[0, 0, 0, 1]]], P2[:, :3], X_VELO)
    assert abs(wrong[0] - HAND_PIXEL[0]) + abs(wrong[1] - HAND_PIXEL[1]) > 10


def test_without_rect_or_offset_the_transform_is_tr():
    """The synthetic calib files (R_rect = I, P2 without offset) keep their meaning."""
    P = P2.copy()
    P[:, 3] = 0
    T = lidar_to_camera2({"P2": P, "R_rect": np.eye(3), "Tr_velo_cam": TR})
    np.testing.assert_allclose(T[:3], TR, atol=1e-12)
    assert lidar_to_camera2({"P2": P}) is None
    assert np.array_equal(rectification_of({}), np.eye(3))


def test_tracking_file_with_r_rect_and_p2_offset(tmp_path):
    f = tmp_path / "0003.txt"
    f.write_text("".join(_row(f"P{i}", P2) for i in range(4)) + _row("R_rect", R_RECT, False)
                 + _row("Tr_velo_cam", TR, False) + _row("Tr_imu_velo", np.eye(3, 4), False))
    calib = read_kitti_calib(f)
    np.testing.assert_array_equal(projection_of(calib), P2)
    T = lidar_to_camera2(calib)
    assert _project_with_K(T, P2[:, :3], X_VELO) == pytest.approx(HAND_PIXEL, abs=1e-6)
    # the object-detection spelling R0_rect: too
    g = tmp_path / "000001.txt"
    g.write_text(_row("P2", P2) + _row("R0_rect", R_RECT) + _row("Tr_velo_to_cam", TR))
    np.testing.assert_allclose(lidar_to_camera2(read_kitti_calib(g)), T, atol=1e-12)


def write_raw_calib(date_dir, P=P2, R_rect=R_RECT, Tr=TR, size=(1242, 375)):
    """calib_cam_to_cam.txt and calib_velo_to_cam.txt as KITTI raw writes them."""
    date_dir.mkdir(parents=True, exist_ok=True)
    cam = ["calib_time: 09-Jan-2012 13:57:47\n", "corner_dist: 9.950000e-02\n"]
    for i in range(4):
        cam += [_row(f"S_{i:02d}", [1392, 512]), _row(f"K_{i:02d}", P[:, :3]),
                _row(f"D_{i:02d}", [-0.37, 0.2, 0.001, 0.0004, -0.07]),
                _row(f"R_{i:02d}", np.eye(3)), _row(f"T_{i:02d}", [-0.54 * (i % 2), 0, 0]),
                _row(f"S_rect_{i:02d}", size),
                _row(f"R_rect_{i:02d}", R_rect if i == 0 else np.eye(3)),
                _row(f"P_rect_{i:02d}", P if i == 2 else np.c_[P[:, :3], np.zeros(3)])]
    (date_dir / "calib_cam_to_cam.txt").write_text("".join(cam))
    (date_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n" + _row("R", Tr[:, :3]) + _row("T", Tr[:, 3])
        + _row("delta_f", [0, 0]) + _row("delta_c", [0, 0]))


def test_raw_date_folder_and_either_file_give_the_same_composition(tmp_path):
    write_raw_calib(tmp_path / "2011_09_26")
    for where in ("2011_09_26", "2011_09_26/calib_cam_to_cam.txt",
                  "2011_09_26/calib_velo_to_cam.txt"):
        calib = read_kitti_calib(tmp_path / where)
        assert "calib_time" not in calib
        np.testing.assert_array_equal(calib["S_rect_02"], [1242, 375])
        np.testing.assert_array_equal(projection_of(calib), P2)  # P_rect_02, not P_rect_00
        np.testing.assert_array_equal(rectification_of(calib), R_RECT)  # R_rect_00
        np.testing.assert_array_equal(velo_to_cam_of(calib), TR)  # R and T
        T = lidar_to_camera2(calib)
        assert _project_with_K(T, P2[:, :3], X_VELO) == pytest.approx(HAND_PIXEL, abs=1e-6)
    with pytest.raises(FileNotFoundError, match="calib_cam_to_cam.txt"):
        read_kitti_calib(tmp_path / "nowhere")


def test_a_singular_projection_is_a_named_error():
    with pytest.raises(ValueError, match="singular"):
        lidar_to_camera2({"P2": np.zeros((3, 4)), "Tr_velo_cam": TR})
