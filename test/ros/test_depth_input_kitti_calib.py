"""The node's calib_file: a KITTI tracking file or a raw date folder gives K and the LiDAR
transform to rectified camera 2, R_rect and P2's baseline offset included."""
from __future__ import annotations

import numpy as np
import pytest
from test_depth_input import VELO_TO_CAM, FakeNode, _cloud, _header, _params

from stemseg_core.geometry import lift_from_points
from stemseg_ros.depth_input import Sensors3D

H, W = 60, 80
T_CAM2 = np.array([0.5, 0.0, 0.0])  # camera 2 sits 0.5 m left of camera 0 (x right)
K = np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])
P2 = np.c_[K, K @ T_CAM2]
A = np.radians(3.0)
R_RECT = np.array([[np.cos(A), 0, np.sin(A)], [0, 1, 0], [-np.sin(A), 0, np.cos(A)]])
TR = VELO_TO_CAM[:3]
#: what the node must use: [I | t] @ R_rect @ Tr, written out here independently of the core
EXPECTED = (np.r_[np.c_[np.eye(3), T_CAM2], [[0, 0, 0, 1]]]
            @ np.r_[np.c_[R_RECT, np.zeros(3)], [[0, 0, 0, 1]]] @ VELO_TO_CAM)


def _row(key, m, colon=True):
    return f"{key}{':' if colon else ''} " + " ".join(f"{v:.15e}" for v in np.ravel(m)) + "\n"


def _tracking_file(tmp_path):
    f = tmp_path / "0000.txt"
    f.write_text("".join(_row(f"P{i}", P2) for i in range(4)) + _row("R_rect", R_RECT, False)
                 + _row("Tr_velo_cam", TR, False))
    return f


def _raw_date_folder(tmp_path):
    d = tmp_path / "2011_09_26"
    d.mkdir()
    (d / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n" + _row("S_rect_02", [W, H])
        + _row("R_rect_00", R_RECT)
        + _row("P_rect_00", np.c_[K, np.zeros(3)]) + _row("P_rect_02", P2))
    (d / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n" + _row("R", TR[:, :3]) + _row("T", TR[:, 3]))
    return d


@pytest.mark.parametrize("make", [_tracking_file, _raw_date_folder])
def test_calib_file_gives_k_and_the_rectified_camera_2_transform(tmp_path, make):
    node = FakeNode()
    s = Sensors3D(node)
    s.start(_params(use_lidar=True, calib_file=str(make(tmp_path))), "/cam/image_raw", qos=None)
    assert s.info()["camera_matrix"] == "calib_file"  # K from P2, no camera_info yet
    cb = {name: c for name, _, c in node.subs}
    # a 0.3 m cube 8 m ahead in front of a wall at 20 m; the mask = the pixels where KITTI's
    # chain P2 @ R_rect @ Tr puts the cube's points
    rng = np.random.default_rng(1)
    cube = np.array([8.0, 0.0, 0.0]) + rng.uniform(-0.15, 0.15, (600, 3))
    wall = np.c_[np.full(6000, 20.0), rng.uniform(-8, 8, (6000, 2))]
    pts = np.r_[cube, wall].astype(np.float32)
    cb["PointCloud2"](_cloud(pts, stamp_ns=10**9))
    uvw = (P2 @ np.r_[(R_RECT @ (TR[:, :3] @ cube.T + TR[:, 3:])), np.ones((1, len(cube)))])
    u, v = np.round(uvw[:2] / uvw[2]).astype(int)
    mask = np.zeros((H, W), bool)
    mask[v, u] = True
    inst = type("I", (), {"track_id": 1, "mask": mask})()
    got = s.lift([inst], _header(10**9), (H, W))[0].object
    want = EXPECTED[:3, :3] @ np.median(cube, 0) + EXPECTED[:3, 3]
    assert got.has_position
    np.testing.assert_allclose(got.position, want, atol=0.05)
    core = lift_from_points([mask], pts, EXPECTED, K)[0]
    np.testing.assert_allclose(got.position, core.position, atol=1e-4)
    # Tr alone (the old reading) sees the cube 5 px aside: mostly wall in the mask
    before = lift_from_points([mask], pts, VELO_TO_CAM, K)[0]
    assert not before.has_position or np.abs(before.position - want).max() > 1.0
