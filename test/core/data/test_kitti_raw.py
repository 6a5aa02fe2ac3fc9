"""`stemseg bag from-kitti-raw`: a small drive written in KITTI raw's own layout -> rosbag2."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from test_bag_3d import _messages
from test_kitti_calib import write_raw_calib

from stemseg_core.cli import main
from stemseg_core.data.kitti_calib import lidar_to_camera2, read_kitti_calib
from stemseg_core.data.kitti_raw import find_drive, raw_frame_source

# 2011_09_26-like calibration (KITTI raw's magnitudes: baseline offset 44.9 px, tilted R_rect)
P = np.array([[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791],
              [0, 0, 1, 0.002745884]])
R_RECT = np.array([[0.9999239, 0.00983776, -0.007445048],
                   [-0.009869795, 0.9999421, -0.004278459],
                   [0.007402527, 0.004351614, 0.9999631]])
TR = np.array([[7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03],
               [1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02],
               [9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]])
H, W = 375, 1242
DRIVE = "2011_09_26_drive_0005_sync"
TIMES = ["2011-09-26 13:02:25.964389445", "2011-09-26 13:02:26.068421331",
         "2011-09-26 13:02:26.172302783"]
KNOWN = np.array([15.25, 2.5, -0.75, 0.5], np.float32)  # x fwd, y left, z up, reflectance


def _write_drive(raw, *, depth_in_drive=True, size=(W, H)):
    write_raw_calib(raw / "2011_09_26", P=P, R_rect=R_RECT, Tr=TR)
    d = raw / "2011_09_26" / DRIVE
    (d / "image_02" / "data").mkdir(parents=True)
    (d / "velodyne_points" / "data").mkdir(parents=True)
    (d / "image_02" / "timestamps.txt").write_text("\n".join(TIMES) + "\n")
    rng = np.random.default_rng(3)
    for k in range(3):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[..., 1] = 40 * k
        cv2.imwrite(str(d / "image_02" / "data" / f"{k:010d}.png"), img)
        pts = np.c_[rng.uniform(-20, 20, (100 + k, 3)), rng.uniform(0, 1, 100 + k)]
        np.r_[pts.astype(np.float32), KNOWN[None]].tofile(
            d / "velodyne_points" / "data" / f"{k:010d}.bin")
    # depth-completion ground truth for the middle frame only (the set leaves out the ends)
    gt = np.zeros((H, W), np.uint16)
    gt[200, 600], gt[10, 20] = 3200, 20480  # 12.5 m, and 80 m (beyond 16UC1 mm's 65.5 m)
    gt_dir = (d if depth_in_drive else raw / "depth" / "train" / DRIVE) / \
        "proj_depth/groundtruth/image_02"
    gt_dir.mkdir(parents=True)
    cv2.imwrite(str(gt_dir / f"{1:010d}.png"), gt)
    return d


def _ns(t: str) -> int:
    from datetime import datetime, timezone

    whole, frac = t.split(".")
    s = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return int(s) * 10**9 + int(frac)


def _pixel(u, v, w):
    return np.array([u / w, v / w])


def test_raw_drive_bag_topics_camera_info_depth_and_a_point_round_trip(tmp_path, capsys):
    d = _write_drive(tmp_path / "raw")
    assert main(["bag", "from-kitti-raw", "--drive", str(d), "--out",
                 str(tmp_path / "bag")]) == 0
    out = capsys.readouterr().out
    assert "3 frames 1242x375" in out and "1 frames 32FC1" in out and "3 scans" in out
    msgs = _messages(tmp_path / "bag")
    assert set(msgs) == {"/camera/image_raw", "/camera/camera_info",
                         "/camera/depth/image_raw", "/velodyne_points"}
    stamps = [s for s, _ in msgs["/camera/image_raw"]]
    assert stamps == [_ns(t) for t in TIMES]  # the drive's own times, exact to the ns
    for _, info in msgs["/camera/camera_info"]:
        assert (info.height, info.width) == (H, W)
        np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), P[:, :3])
        np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), P)
    (d_stamp, depth), = msgs["/camera/depth/image_raw"]
    assert d_stamp == stamps[1] and depth.encoding == "32FC1"
    m = np.frombuffer(depth.data.tobytes(), "<f4").reshape(H, W)
    assert m[200, 600] == 12.5 and m[10, 20] == 80.0 and np.isnan(m).sum() == H * W - 2
    # every scan, all points, at its image's stamp; the known point projects where KITTI's
    # P_rect_02 @ R_rect_00 @ [R|T] puts it, using the printed lidar_to_camera and K alone
    nums = re.search(r"lidar_to_camera:=\"\[([^\]]+)\]\"", out).group(1)
    T = np.array([float(v) for v in nums.split(",")]).reshape(4, 4)
    K = np.reshape(msgs["/camera/camera_info"][0][1].k, (3, 3))
    for k, (s, cloud) in enumerate(msgs["/velodyne_points"]):
        assert s == stamps[k] and cloud.width == 101 + k
        pts = np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 4)
        x = pts[-1].astype(np.float64)
        np.testing.assert_array_equal(pts[-1], KNOWN)
        want = _pixel(*(P @ np.r_[R_RECT @ (TR @ np.r_[x[:3], 1]), 1]))
        c = T[:3, :3] @ x[:3] + T[:3, 3]
        np.testing.assert_allclose(_pixel(*(K @ c)), want, atol=1e-6)
    # ... and Tr alone (no R_rect, no camera 2 offset of 6 cm) is 2 px off at 15 m
    c0 = TR[:, :3] @ KNOWN[:3] + TR[:, 3]
    assert np.abs(_pixel(*(K @ c0)) - want).max() > 1.5
    frames_csv = (tmp_path / "bag" / "frames.csv").read_text().splitlines()
    assert frames_csv[1].endswith(f"0000000000.png,{DRIVE}")


def test_depth_root_and_drive_name_under_raw(tmp_path):
    _write_drive(tmp_path / "raw", depth_in_drive=False)
    src = raw_frame_source("2011_09_26_drive_0005", tmp_path / "raw", tmp_path / "raw" / "depth")
    assert src.seq_dir.name == DRIVE and [k for k, _ in src.frames] == [0, 1, 2]
    assert [f is not None for f in src.depth_files] == [False, True, False]
    np.testing.assert_allclose(lidar_to_camera2(read_kitti_calib(src.calibration_file))[:3],
                               np.c_[np.eye(3), np.linalg.solve(P[:, :3], P[:, 3])]
                               @ np.r_[np.c_[R_RECT, np.zeros(3)], [[0, 0, 0, 1]]]
                               @ np.r_[TR, [[0, 0, 0, 1]]], atol=1e-12)
    no_depth = raw_frame_source("2011_09_26_drive_0005", tmp_path / "raw")
    assert no_depth.depth_files is None and no_depth.velo_files is not None


def test_bad_drives_are_named_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="--raw"):
        find_drive("2011_09_26_drive_0005")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_drive("2011_09_26_drive_0009", tmp_path)
    d = _write_drive(tmp_path / "small", size=(620, 188))  # not the S_rect_02 size
    assert main(["bag", "from-kitti-raw", "--drive", str(d), "--out", str(tmp_path / "b")]) == 2
    assert "S_rect_02 says 1242x375" in capsys.readouterr().err
    (d.parent / "calib_cam_to_cam.txt").unlink()
    (d.parent / "calib_velo_to_cam.txt").unlink()
    assert main(["bag", "from-kitti-raw", "--drive", str(d), "--out", str(tmp_path / "b")]) == 2
    assert "calib_cam_to_cam.txt" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_synthetic_drive_rearranged_as_raw_lifts_like_the_original(tmp_path, capsys):
    """`stemseg synth --depth --lidar` written again as a raw drive whose calibration has a
    camera-2 offset and a tilted R_rect (the LiDAR R|T chosen so that the chain is the same
    camera): the bag's scans and depth, with the printed lidar_to_camera and CameraInfo's K,
    lift the ground-truth masks where the synthetic files do."""
    from stemseg_core.data.kitti_camera import read_calib, velo_to_cam_of
    from stemseg_core.data.synth import generate_dataset
    from stemseg_core.evaluation.bag_positions import _gt_by_frame
    from stemseg_core.geometry import lift_from_depth, lift_from_points

    h, w, n = 96, 320, 2
    generate_dataset(tmp_path / "k", sequences=1, frames=n, seed=5, height=h, width=w,
                     val_fraction=0.0, depth=True, lidar=True)
    tr = tmp_path / "k" / "training"
    calib = read_calib(tr / "calib" / "0000.txt")
    K, Tr = calib["P2"][:, :3], velo_to_cam_of(calib)
    t = np.array([0.06, -0.001, 0.003])
    a = np.radians(0.7)
    R_rect = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    velo = np.c_[R_rect.T @ Tr[:, :3], R_rect.T @ (Tr[:, 3] - t)]
    write_raw_calib(tmp_path / "raw" / "2011_09_26", P=np.c_[K, K @ t], R_rect=R_rect, Tr=velo,
                    size=(w, h))
    d = tmp_path / "raw" / "2011_09_26" / DRIVE
    for sub in ("image_02/data", "velodyne_points/data", "proj_depth/groundtruth/image_02"):
        (d / sub).mkdir(parents=True)
    (d / "image_02" / "timestamps.txt").write_text("\n".join(TIMES[:n]) + "\n")
    for k in range(n):
        (d / f"image_02/data/{k:010d}.png").write_bytes(
            (tr / f"image_02/0000/{k:06d}.png").read_bytes())
        (d / f"velodyne_points/data/{k:010d}.bin").write_bytes(
            (tr / f"velodyne/0000/{k:06d}.bin").read_bytes())
        mm = cv2.imread(str(tr / f"depth_02/0000/{k:06d}.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(d / f"proj_depth/groundtruth/image_02/{k:010d}.png"),
                    np.round(mm.astype(np.float64) * 0.256).astype(np.uint16))
    assert main(["bag", "from-kitti-raw", "--drive", str(d), "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    T = np.array([float(v) for v in re.search(r"lidar_to_camera:=\"\[([^\]]+)\]\"", out)
                  .group(1).split(",")]).reshape(4, 4)
    msgs = _messages(tmp_path / "b")
    K_info = np.reshape(msgs["/camera/camera_info"][0][1].k, (3, 3))
    gt = _gt_by_frame(tmp_path / "k", "0000")
    for k in range(n):
        masks = [m for _, m in gt[k]]
        pts = np.frombuffer(msgs["/velodyne_points"][k][1].data.tobytes(), "<f4").reshape(-1, 4)
        depth = msgs["/camera/depth/image_raw"][k][1]
        metres = np.frombuffer(depth.data.tobytes(), "<f4").reshape(h, w)
        mm = cv2.imread(str(tr / f"depth_02/0000/{k:06d}.png"), cv2.IMREAD_UNCHANGED)
        for got, want, tol in (
                (lift_from_points(masks, pts, T, K_info), lift_from_points(masks, pts, Tr, K),
                 1e-4),
                (lift_from_depth(masks, metres, K_info), lift_from_depth(masks, mm, K), 0.01)):
            assert [o.has_position for o in got] == [o.has_position for o in want]
            assert sum(o.has_position for o in got) >= 1
            for g, wnt in zip(got, want):
                if wnt.has_position:
                    np.testing.assert_allclose(g.position, wnt.position, atol=tol)
    # Tr alone with this calibration is the wrong camera (what the node did before)
    wrong = lift_from_points(masks, pts, np.r_[velo, [[0, 0, 0, 1]]], K_info)
    assert max(np.abs(g.position - wnt.position).max() for g, wnt in
               zip(wrong, lift_from_points(masks, pts, Tr, K))
               if g.has_position and wnt.has_position) > 0.05
