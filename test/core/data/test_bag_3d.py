"""bag from-kitti carries the synthetic 3-D ground truth: true K, 16UC1 depth, PointCloud2."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from stemseg_core.data import rosbag_io as rio
from stemseg_core.data.synth import SynthParams, generate_dataset, sequence_generator

H, W, N = 64, 160, 3


@pytest.fixture(scope="module")
def synth3d(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth3d")
    generate_dataset(out, sequences=1, frames=N, seed=5, height=H, width=W, val_fraction=0.0,
                     depth=True, lidar=True)
    return out


def _messages(bag):
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as r:
        out: dict[str, list] = {}
        for conn, stamp, raw in r.messages():
            out.setdefault(conn.topic, []).append((stamp, r.deserialize(raw, conn.msgtype)))
    return out


def test_depth_points_and_true_camera_round_trip(synth3d, tmp_path):
    s = rio.write_kitti_bag(synth3d, "0000", tmp_path / "bag", progress=False)
    assert s.depth_topic == "/camera/depth/image_raw" and s.depth_frames == N
    assert s.points_topic == "/velodyne_points" and s.points_frames == N
    msgs = _messages(tmp_path / "bag")
    P = sequence_generator(5, 0, "train", SynthParams(height=H, width=W, frames=N)).projection()
    _, info = msgs["/camera/camera_info"][0]
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), P[:, :3], rtol=1e-9)
    for k in range(N):
        stamp, img = msgs["/camera/image_raw"][k]
        d_stamp, depth = msgs["/camera/depth/image_raw"][k]
        p_stamp, cloud = msgs["/velodyne_points"][k]
        assert stamp == d_stamp == p_stamp
        assert depth.encoding == "16UC1" and depth.header.frame_id == img.header.frame_id
        got = np.frombuffer(depth.data.tobytes(), "<u2").reshape(H, W)
        want = cv2.imread(str(synth3d / f"training/depth_02/0000/{k:06d}.png"),
                          cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got, want) and (got > 0).any()
        assert cloud.header.frame_id == "velodyne" and cloud.point_step == 16
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
        pts = np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 4)
        want_pts = np.fromfile(synth3d / f"training/velodyne/0000/{k:06d}.bin", "<f4")
        assert cloud.width == len(pts) and np.array_equal(pts.ravel(), want_pts)
    # the colour stream is still picked automatically beside the depth images
    assert rio.select_image_topic(rio.list_topics(tmp_path / "bag"), None).name == \
        "/camera/image_raw"


def test_no_depth_or_lidar_topics_without_the_files(tmp_path):
    generate_dataset(tmp_path / "k", sequences=1, frames=2, seed=5, height=H, width=W,
                     val_fraction=0.0)
    s = rio.write_kitti_bag(tmp_path / "k", "0000", tmp_path / "bag", progress=False)
    assert s.depth_topic is None and s.points_topic is None
    assert s.calibration_file is not None
    assert set(_messages(tmp_path / "bag")) == {"/camera/image_raw", "/camera/camera_info"}


def test_the_depth_topic_reads_back_as_uint16_millimetres(synth3d, tmp_path):
    """BagImage.array(): the raw image in its own dtype (bag eval's 3-D score reads depth so)."""
    from stemseg_core.evaluation.bag_positions import find_depth_topic

    rio.write_kitti_bag(synth3d, "0000", tmp_path / "bag", progress=False)
    topic = find_depth_topic(tmp_path / "bag", "/camera/image_raw")
    assert topic == "/camera/depth/image_raw"
    assert find_depth_topic(tmp_path / "bag", "/other/image_raw") is None
    with rio.BagImageReader(tmp_path / "bag", topic) as reader:
        frames = list(reader)
    for k, img in enumerate(frames):
        want = cv2.imread(str(synth3d / f"training/depth_02/0000/{k:06d}.png"),
                          cv2.IMREAD_UNCHANGED)
        got = img.array()
        assert got.dtype == np.uint16 and np.array_equal(got, want)
    with rio.BagImageReader(tmp_path / "bag", "/camera/image_raw") as reader:
        assert next(iter(reader)).array().shape == (H, W, 3)
