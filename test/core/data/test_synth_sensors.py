"""Synthetic depth camera and LiDAR: known geometry, calib files, images unchanged."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from stemseg_core.data.kitti_camera import read_calib, read_projection, velo_to_cam_of
from stemseg_core.data.synth import CAR, SynthParams, generate_dataset, sequence_generator
from stemseg_core.data.synth.render import car_parts
from stemseg_core.data.synth.sensors import LIDAR_BEAMS, velo_to_cam

H, W = 96, 320


def _frame_with_cars(seed=3, frames=3):
    """(generator, frame) of the first sequence whose last frame shows a car."""
    for seq in range(12):
        g = sequence_generator(seed, seq, "train", SynthParams(height=H, width=W, frames=frames))
        *_, fr = g.frames(depth=True, lidar=True)
        if any(o.class_id == CAR and o.area > 150 for o in fr.objects):
            return g, fr
    raise AssertionError("no car in 12 sequences")


def _to_world(g, cam):
    """Camera optical points (N, 3) -> world (x, y up, z) of the generator's current frame."""
    c, s = math.cos(g.yaw), math.sin(g.yaw)
    x = c * cam[:, 0] + s * cam[:, 2]
    z = -s * cam[:, 0] + c * cam[:, 2] + g.ego_z
    return np.stack([x, 1.65 - cam[:, 1], z], 1)


def _dist_to_boxes(pts, boxes):
    """Distance of world points to the nearest of some boxes' surfaces (0 inside/on)."""
    best = np.full(len(pts), np.inf)
    for cx, cz, yaw, length, width, y0, y1 in boxes:
        s, c = math.sin(yaw), math.cos(yaw)
        dx, dz = pts[:, 0] - cx, pts[:, 2] - cz
        loc = np.stack([dx * s + dz * c, dx * c - dz * s, pts[:, 1] - (y0 + y1) / 2], 1)
        half = np.array([length / 2, width / 2, (y1 - y0) / 2])
        out = np.maximum(np.abs(loc) - half, 0)
        best = np.minimum(best, np.linalg.norm(out, axis=1))
    return best


def test_sensors_do_not_change_images_or_masks():
    p = SynthParams(height=H, width=W, frames=3)
    a = list(sequence_generator(1, 0, "train", p).frames())
    b = list(sequence_generator(1, 0, "train", p).frames(depth=True, lidar=True))
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.image, fb.image)
        assert np.array_equal(fa.instance_map, fb.instance_map)
        assert fa.depth is None and fb.depth.shape == (H, W) and fb.points.shape[1] == 4


def test_depth_backprojects_onto_the_car_surface():
    g, fr = _frame_with_cars()
    car = max((o for o in fr.objects if o.class_id == CAR), key=lambda o: o.area)
    agent = next(a for a in g.agents if a.obj_id == car.obj_id)
    wheels, body, _top, cab = car_parts(agent)
    v, u = np.nonzero((fr.instance_map == car.obj_id) & (fr.depth > 0))
    z = fr.depth[v, u].astype(np.float64)
    # the frame's own principal point (P2 of the calib file lacks the per-frame shake)
    cam = np.stack([(u - g.cxt) / g.f * z, (v - g.cyt) / g.f * z, z], 1)
    d = _dist_to_boxes(_to_world(g, cam), [body, cab] + wheels)
    assert len(d) > 100
    # inside the silhouette exactly on the surface; the rasteriser's edge pixels lie up to
    # 2 px (the grown parts' margin, diagonally) off it
    assert np.median(d) < 1e-3 and (d < 0.01).mean() > 0.75
    assert d.max() <= 2 * math.sqrt(3) * z.max() / g.f + 1e-3
    # with the calib file's P2 the error is the shake only: a few pixels at that depth
    P = g.projection()
    cam2 = np.stack([(u - P[0, 2]) / P[0, 0] * z, (v - P[1, 2]) / P[1, 1] * z, z], 1)
    shift = np.hypot(g.cxt - g.cx, g.cyt - g.cy) / g.f * z.max()
    assert np.abs(cam2 - cam).max() <= shift + 1e-6


def test_depth_of_the_road_and_the_sky():
    g, fr = _frame_with_cars()
    assert (fr.depth[0] == 0).mean() > 0.3  # sky: no return on the top row (mostly)
    # a road pixel in the bottom row: the ground plane 1.65 m below the camera
    v = H - 1
    u = W // 2
    y_dir = (v - g.cyt) / g.f
    assert fr.depth[v, u] == pytest.approx(1.65 / y_dir, rel=0.02)


def test_lidar_points_land_on_the_cars():
    g, fr = _frame_with_cars()
    pts = fr.points
    assert pts.dtype == np.float32 and pts.shape[1] == 4
    # KITTI geometry: beams from +2 to -24.8 deg, 360 deg around
    T = velo_to_cam()
    xyz = pts[:, :3].astype(np.float64)
    el = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    assert el.max() <= 2.0 + 1e-3 and el.min() >= -24.8 - 1e-3
    assert len(np.unique(np.round(el, 2))) <= LIDAR_BEAMS * 4
    assert (xyz[:, 0] < 0).any() and (xyz[:, 0] > 0).any()
    cam = xyz @ T[:, :3].T + T[:, 3]
    world = _to_world(g, cam)
    boxes = []
    for a in g.agents:
        if a.kind == CAR:
            wheels, body, _t, cab = car_parts(a)
            boxes += [body, cab] + wheels
    d = _dist_to_boxes(world, boxes)
    on_car = d < 0.02
    assert on_car.sum() > 20
    assert np.allclose(pts[on_car, 3], pts[on_car, 3].round(2))  # material reflectance
    ground = np.abs(world[:, 1]) < 1e-3
    assert ground.sum() > len(pts) // 3


def test_written_calib_depth_and_velodyne(tmp_path):
    generate_dataset(tmp_path, sequences=1, frames=2, seed=3, height=H, width=W,
                     val_fraction=0.0, depth=True, lidar=True)
    g = sequence_generator(3, 0, "train", SynthParams(height=H, width=W, frames=2))
    calib = tmp_path / "training/calib/0000.txt"
    c = read_calib(calib)
    assert np.allclose(read_projection(calib), g.projection(), atol=1e-9)
    assert np.allclose(c["R_rect"], np.eye(3))
    assert np.allclose(velo_to_cam_of(c), velo_to_cam())
    frames = list(g.frames(depth=True, lidar=True))
    d = cv2.imread(str(tmp_path / "training/depth_02/0000/000001.png"), cv2.IMREAD_UNCHANGED)
    assert d.dtype == np.uint16 and d.shape == (H, W)
    want = np.round(frames[1].depth.astype(np.float64) * 1000)
    assert np.array_equal(d, want.astype(np.uint16))
    pts = np.fromfile(tmp_path / "training/velodyne/0000/000001.bin", "<f4").reshape(-1, 4)
    assert np.array_equal(pts, frames[1].points)


def test_calib_without_lidar_has_no_velo(tmp_path):
    generate_dataset(tmp_path, sequences=1, frames=1, seed=3, height=H, width=W,
                     val_fraction=0.0)
    c = read_calib(tmp_path / "training/calib/0000.txt")
    assert "P2" in c and velo_to_cam_of(c) is None
    assert not (tmp_path / "training/depth_02").exists()
    assert not (tmp_path / "training/velodyne").exists()
