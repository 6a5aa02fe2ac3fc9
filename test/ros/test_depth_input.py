"""The node's 3-D input in-process (issue 36): PointCloud2 parsing, pairing by stamp, depth and
LiDAR lifting, and hostile messages dropped and counted. Over DDS: test_node_3d.py."""
from __future__ import annotations

import types

import numpy as np
import pytest

from stemseg_core.geometry import lift_from_points
from stemseg_ros import conversions as cv
from stemseg_ros.depth_input import Sensors3D, cloud_xyz

H, W = 60, 80
K = np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])
#: LiDAR frame (x forward, y left, z up) -> camera optical frame (x right, y down, z forward)
VELO_TO_CAM = np.array([[0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, 0.3], [0, 0, 0, 1.0]])


def _cloud(xyz: np.ndarray, big_endian: bool = False, stamp_ns: int = 0):
    """PointCloud2 of x y z float32 + intensity, 20-byte points, rows padded by 4 bytes."""
    from sensor_msgs.msg import PointCloud2, PointField

    n = len(xyz)
    dt = np.dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("i", "f4"), ("pad", "u4")]
                  ).newbyteorder(">" if big_endian else "<")
    rec = np.zeros(n, dt)
    rec["x"], rec["y"], rec["z"], rec["i"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], 7.0
    msg = PointCloud2(height=1, width=n, point_step=20, row_step=20 * n + 4,
                      is_bigendian=big_endian, is_dense=True)
    msg.fields = [PointField(name=a, offset=4 * k, datatype=PointField.FLOAT32, count=1)
                  for k, a in enumerate(("x", "y", "z", "intensity"))]
    msg.data = rec.tobytes() + b"\0" * 4
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return msg


@pytest.mark.parametrize("big_endian", [False, True])
def test_cloud_xyz_reads_fields_by_offset_and_drops_non_finite(big_endian):
    xyz = np.array([[1, 2, 3], [4, 5, 6], [np.nan, 0, 0], [-7.5, 8, 9]], np.float32)
    got = cloud_xyz(_cloud(xyz, big_endian))
    np.testing.assert_array_equal(got, xyz[[0, 1, 3]])


def test_cloud_xyz_refuses_malformed_clouds():
    from sensor_msgs.msg import PointField

    good = np.ones((10, 3), np.float32)
    short = _cloud(good)
    short.data = bytes(short.data)[:100]
    no_z = _cloud(good)
    no_z.fields = no_z.fields[:2]
    doubles = _cloud(good)
    doubles.fields[2].datatype = PointField.FLOAT64
    outside = _cloud(good)
    outside.fields[2].offset = 18  # past point_step 20 - 4
    for msg, text in ((short, "data has 100"), (no_z, "'z' missing"),
                      (doubles, "'z' missing or not float32"), (outside, "'z'")):
        with pytest.raises(ValueError, match=text):
            cloud_xyz(msg)
    with pytest.raises(ValueError, match="more than 5"):
        cloud_xyz(_cloud(good), max_points=5)


class FakeNode:
    def __init__(self):
        self.subs, self.lines = [], []

    def get_logger(self):
        return types.SimpleNamespace(**{lv: (lambda m, lv=lv, **kw: self.lines.append((lv, m)))
                                        for lv in ("error", "warning", "info")})

    def get_namespace(self):
        return "/ns"

    def resolve_topic_name(self, name):
        return {"depth": "/rgbd/depth"}.get(name, "/ns/" + name)  # depth remapped

    def create_subscription(self, msg_type, topic, cb, qos):
        self.subs.append((msg_type.__name__, topic, cb))
        return topic

    def destroy_subscription(self, sub):
        pass


def _params(**kw):
    base = dict(use_depth=False, use_lidar=False, lidar_to_camera=(), calib_file="",
                sync_tolerance_sec=0.05, max_image_pixels=10_000)
    return types.SimpleNamespace(**{**base, **kw})


def _header(stamp_ns):
    from std_msgs.msg import Header

    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns, 10**9)
    return h


def _info():
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(height=H, width=W)
    info.k = [float(v) for v in K.ravel()]
    return info


def _plate(z_m: float):
    """An instance (a 20x20 box) and a depth image with it at z_m, the rest at 50 m."""
    mask = np.zeros((H, W), bool)
    mask[20:40, 30:50] = True
    depth = np.full((H, W), 50_000, np.uint16)
    depth[mask] = int(z_m * 1000)
    return types.SimpleNamespace(track_id=3, mask=mask), depth


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_pairs_by_stamp_within_tolerance_and_gives_velocity(encoding):
    node = FakeNode()
    s = Sensors3D(node)
    s.start(_params(use_depth=True), "/cam/image_raw", qos=None)
    topics = {name: (topic, cb) for name, topic, cb in node.subs}
    assert topics["Image"][0] == "/rgbd/depth"  # remapped
    assert topics["CameraInfo"][0] == "/cam/camera_info"  # not remapped: the image's sibling
    topics["CameraInfo"][1](_info())
    for k, z in enumerate((10.0, 9.0)):  # 1 s apart, 1 m closer
        inst, depth = _plate(z)
        if encoding == "32FC1":  # metres, NaN = no return
            depth = np.where(depth > 0, depth / 1000.0, np.nan).astype(np.float32)
        topics["Image"][1](cv.array_to_image(depth, encoding, _header(k * 10**9 + 30_000_000)))
    inst, _ = _plate(10.0)
    t0 = s.lift([inst], _header(0), (H, W))[0]  # depth 30 ms later: paired
    assert t0.object.has_position and t0.object.position[2] == pytest.approx(10.0, abs=1e-3)
    assert abs(t0.object.position[0]) < 0.2 and not t0.has_velocity
    t1 = s.lift([inst], _header(10**9), (H, W))[0]
    assert t1.object.position[2] == pytest.approx(9.0, abs=1e-3)
    assert t1.has_velocity and t1.velocity[2] == pytest.approx(-1.0, abs=0.05)
    assert not s.lift([inst], _header(10**9 + 90_000_000), (H, W))[0].object.has_position
    assert s.counts["frames_3d"] == 2 and s.counts["frames_without_3d"] == 1


def test_hostile_depth_and_camera_info_are_dropped_and_counted():
    node = FakeNode()
    s = Sensors3D(node)
    s.start(_params(use_depth=True), "/cam/image_raw", qos=None)
    cb = {name: c for name, _, c in node.subs}
    _, depth = _plate(5.0)
    rgb = cv.array_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", _header(0))
    big = cv.array_to_image(np.zeros((200, 200), np.uint16), "16UC1", _header(0))  # > 10000 px
    cut = cv.array_to_image(depth, "16UC1", _header(0))
    cut.data = bytes(cut.data)[:50]
    for m in (rgb, big, cut):
        cb["Image"](m)
    bad_k = _info()
    bad_k.k = [0.0] * 9
    cb["CameraInfo"](bad_k)
    cb["Image"](None)  # not even a message: the guard logs it
    assert s.counts["depth_dropped"] == 3 and s.counts["camera_info_dropped"] == 1
    assert s.info()["camera_matrix"] == "none yet"
    inst, _ = _plate(5.0)
    assert not s.lift([inst], _header(0), (H, W))[0].object.has_position  # no K, no depth
    assert any("depth callback failed" in m for _, m in node.lines)


def test_lidar_points_moved_to_the_camera_frame_match_the_core():
    node = FakeNode()
    s = Sensors3D(node)
    s.start(_params(use_lidar=True, lidar_to_camera=tuple(VELO_TO_CAM.ravel())),
            "/cam/image_raw", qos=None)
    cb = {name: c for name, _, c in node.subs}
    cb["CameraInfo"](_info())
    rng = np.random.default_rng(0)
    # a wall 8 m ahead (LiDAR x forward) and points behind the LiDAR
    pts = np.concatenate([np.c_[np.full(4000, 8.0), rng.uniform(-4, 4, (4000, 2))],
                          np.c_[np.full(100, -5.0), rng.uniform(-1, 1, (100, 2))]])
    cb["PointCloud2"](_cloud(pts.astype(np.float32), stamp_ns=5 * 10**9))
    inst, _ = _plate(1.0)
    got = s.lift([inst], _header(5 * 10**9 + 10_000_000), (H, W))[0].object
    want = lift_from_points([inst.mask], pts, VELO_TO_CAM, K)[0]
    assert got.has_position and want.has_position
    np.testing.assert_allclose(got.position, want.position, atol=1e-4)
    assert got.position[2] == pytest.approx(8.3, abs=1e-3)  # + the transform's 0.3 m
    broken = _cloud(pts.astype(np.float32))
    broken.point_step = 2
    cb["PointCloud2"](broken)
    assert s.counts["points_in"] == 2 and s.counts["points_dropped"] == 1


def test_lidar_without_a_transform_fails_start():
    with pytest.raises(ValueError, match="no Tr_velo_cam"):
        Sensors3D(FakeNode()).start(_params(use_lidar=True), "/cam/image_raw", qos=None)
