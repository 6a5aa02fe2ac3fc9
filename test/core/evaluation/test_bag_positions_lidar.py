"""bag eval's 3-D score against LiDAR when the bag has no depth: PointCloud2 read back without
ROS, and masks lifted with the scans scored against the ground-truth masks lifted the same way."""
from __future__ import annotations

import types

import numpy as np
import pytest

from stemseg_core.data import rosbag_io as rio
from stemseg_core.data.bag_format import BagError
from stemseg_core.data.bag_points import cloud_xyz, find_points_topic, read_clouds
from stemseg_core.data.synth import generate_dataset
from stemseg_core.evaluation.bag_positions import (
    _gt_by_frame,
    find_sensor_topic,
    score_bag_positions,
)

H, W, N = 192, 640, 4


@pytest.fixture(scope="module")
def lidar_bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("lidar")
    generate_dataset(root / "k", sequences=1, frames=N, seed=3, height=H, width=W,
                     val_fraction=0.0, lidar=True)
    s = rio.write_kitti_bag(root / "k", "0000", root / "bag", progress=False)
    assert s.depth_topic is None and s.points_topic == "/velodyne_points"
    return root / "k", root / "bag", s.stamps_ns


def test_clouds_read_back_as_written(lidar_bag):
    kitti, bag, stamps = lidar_bag
    assert find_points_topic(rio.list_topics(bag)) == "/velodyne_points"
    assert find_sensor_topic(bag, "/camera/image_raw") == ("lidar", "/velodyne_points")
    clouds = read_clouds(bag, "/velodyne_points")
    assert sorted(clouds) == stamps
    for k, stamp in enumerate(stamps):
        want = np.fromfile(kitti / f"training/velodyne/0000/{k:06d}.bin", "<f4").reshape(-1, 4)
        np.testing.assert_array_equal(clouds[stamp], want[:, :3])


def _msg(xyz, big_endian=False, pad_row=0, z_type=7):
    f = types.SimpleNamespace
    dt = np.dtype([("i", "f4"), ("x", "f4"), ("y", "f4"), ("z", "f4"), ("p", "u4")]
                  ).newbyteorder(">" if big_endian else "<")
    rec = np.zeros(len(xyz), dt)
    rec["x"], rec["y"], rec["z"] = xyz.T
    data = np.frombuffer(rec.tobytes() + b"\0" * pad_row, np.uint8)
    return f(height=1, width=len(xyz), point_step=20, row_step=20 * len(xyz) + pad_row,
             is_bigendian=big_endian, data=data,
             fields=[f(name=n, offset=o, datatype=t) for n, o, t in
                     (("intensity", 0, 7), ("x", 4, 7), ("y", 8, 7), ("z", 12, z_type))])


@pytest.mark.parametrize("big_endian", [False, True])
def test_cloud_fields_by_offset_either_byte_order_non_finite_dropped(big_endian):
    xyz = np.array([[1, 2, 3], [4, 5, 6], [np.nan, 0, 0]], np.float32)
    got = cloud_xyz(_msg(xyz, big_endian, pad_row=4))
    np.testing.assert_array_equal(got, xyz[:2])
    with pytest.raises(BagError, match="'z' missing or not float32"):
        cloud_xyz(_msg(xyz, z_type=8))
    short = _msg(xyz)
    short.data = short.data[:30]
    with pytest.raises(BagError, match="data has 30 bytes"):
        cloud_xyz(short)
    with pytest.raises(BagError, match="more than 2"):
        cloud_xyz(_msg(xyz), max_points=2)


def test_lidar_score_is_small_for_true_masks_and_large_for_shifted_ones(lidar_bag):
    kitti, bag, stamps = lidar_bag
    gt = _gt_by_frame(kitti, "0000")

    def results(shift):
        return [types.SimpleNamespace(instances=[
            types.SimpleNamespace(mask=np.roll(m, shift, axis=1), track_id=j)
            for j, (_, m) in enumerate(gt.get(k, []))]) for k in range(N)]

    exact = score_bag_positions(bag, "/velodyne_points", results(0), stamps, list(range(N)),
                                kitti, "0000", sensor="lidar")
    errs = np.array([e for _, e, _ in exact.errors])
    assert len(errs) >= 4 and exact.instances == sum(len(v) for v in gt.values())
    assert np.median(errs) < 0.05, errs
    shifted = score_bag_positions(bag, "/velodyne_points", results(6), stamps, list(range(N)),
                                  kitti, "0000", sensor="lidar")
    assert np.median([e for _, e, _ in shifted.errors]) > 2 * max(np.median(errs), 0.01)
    # frames whose scan is missing are not scored
    none = score_bag_positions(bag, "/velodyne_points", results(0), [s + 1 for s in stamps],
                               list(range(N)), kitti, "0000", sensor="lidar")
    assert none.errors == [] and none.instances == 0
