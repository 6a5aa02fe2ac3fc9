"""3-D per instance over real DDS (issue 36): a synthetic drive (stemseg synth --depth --lidar,
cars and pedestrians) streamed from this process as image + 16UC1 depth (or PointCloud2 scan)
+ CameraInfo; the node's instances carry
positions close to the ground truth (the ground-truth masks back-projected with the true depth
by the core's lift_from_depth), and frames whose depth never came are answered without 3-D."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest
from ros_helpers import REPO, ros_env
from test_depth_input import _cloud
from test_node import Collector, _flush, _header, _wait_connected

from stemseg_core.data.bag_writer import read_png
from stemseg_core.data.formats.kitti_mots import decode_instance_png
from stemseg_core.data.kitti_camera import read_calib
from stemseg_core.geometry import intrinsics_of, lift_from_depth
from stemseg_ros import conversions as cv

N_FRAMES, H, W = 8, 192, 640
NO_DEPTH = {2, 5}  # frames published without their depth image


def _synth(out):
    subprocess.run([sys.executable, "-m", "stemseg_core.cli", "synth", "--out", str(out),
                    "--sequences", "1", "--frames", str(N_FRAMES), "--seed", "0", "--height",
                    str(H), "--width", str(W), "--val-fraction", "0", "--depth", "--lidar",
                    "--quiet"],
                   check=True, cwd=REPO, env=ros_env(0), timeout=120)
    tr = out / "training"
    K = intrinsics_of(read_calib(tr / "calib" / "0000.txt")["P2"])
    frames = [(read_png(tr / "image_02" / "0000" / f"{i:06d}.png"),
               read_png(tr / "depth_02" / "0000" / f"{i:06d}.png"),
               decode_instance_png(read_png(out / "instances" / "0000" / f"{i:06d}.png")),
               np.fromfile(tr / "velodyne" / "0000" / f"{i:06d}.bin", np.float32).reshape(-1, 4))
              for i in range(N_FRAMES)]
    return K, frames


class _StandardCollector:
    """Subscribes the node's vision_msgs and marker outputs (before the node starts)."""

    def __init__(self, client, ns: str) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import Detection2DArray, Detection3DArray
        from visualization_msgs.msg import MarkerArray

        from stemseg_ros import names

        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.ns, self.got = ns, {"2d": [], "3d": [], "markers": []}
        for key, msg_type, topic in (("2d", Detection2DArray, names.DETECTIONS),
                                     ("3d", Detection3DArray, names.DETECTIONS_3D),
                                     ("markers", MarkerArray, names.MARKERS)):
            client.node.create_subscription(msg_type, names.node_topic(topic, ns),
                                            self.got[key].append, qos)

    def check(self, client, instances) -> None:
        """Same frames and track IDs as ~/instances; 3-D boxes at the published positions;
        markers for the 3-D tracks; ~/label_info for a subscriber that comes late."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import LabelInfo
        from visualization_msgs.msg import Marker

        from stemseg_ros import names

        n = len(instances)
        assert client.spin_until(lambda: all(len(v) >= n for v in self.got.values()), 10), (
            {k: len(v) for k, v in self.got.items()}, n)
        for inst, d2, d3, mk in zip(instances, self.got["2d"], self.got["3d"],
                                    self.got["markers"]):
            assert d2.header.stamp == d3.header.stamp == mk.markers[0].header.stamp == (
                inst.header.stamp)
            assert [d.id for d in d2.detections] == [str(m.track_id) for m in inst.instances]
            assert [d.results[0].hypothesis.class_id for d in d2.detections] == [
                m.class_name for m in inst.instances]
            with_pos = {str(m.track_id): m.position for m in inst.instances if m.has_position}
            assert {d.id for d in d3.detections} == set(with_pos)
            for d in d3.detections:
                assert d.bbox.center.position == with_pos[d.id]
            assert mk.markers[0].action == Marker.DELETEALL
            cubes = [m for m in mk.markers if m.type == Marker.CUBE]
            assert {str(m.id) for m in cubes} == set(with_pos)
        assert any(d3.detections for d3 in self.got["3d"])
        late: list = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        client.node.create_subscription(LabelInfo, names.node_topic(names.LABEL_INFO, self.ns),
                                        late.append, latched)
        assert client.spin_until(lambda: late, 10), "no ~/label_info for a late subscriber"
        assert {(c.class_id, c.class_name) for c in late[0].class_map} >= {(1, "car"),
                                                                        (2, "pedestrian")}


#: sensor -> (share of matched instances within max(0.5 m, 5 %) at least, median error at most)
BOUNDS = {"depth": (0.9, 0.25), "lidar": (0.8, 0.3), "lidar_raw": (0.8, 0.3)}


def _raw_date_folder(synth_calib, out):
    """The synthetic camera as a KITTI raw date folder with a camera-2 offset and a tilted
    R_rect; the LiDAR R|T is chosen so that [I|t] R_rect [R|T] is the synthetic Tr_velo_cam, so
    the node must compose all three to place the points right."""
    from stemseg_core.data.kitti_camera import velo_to_cam_of

    calib = read_calib(synth_calib)
    K, Tr = calib["P2"][:, :3], velo_to_cam_of(calib)
    t, a = np.array([0.06, -0.001, 0.003]), math.radians(1.0)
    R_rect = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])

    def row(key, m):
        return f"{key}: " + " ".join(f"{v:.15e}" for v in np.ravel(m)) + "\n"

    out.mkdir(parents=True)
    (out / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n" + row("S_rect_02", [W, H])
        + row("R_rect_00", R_rect) + row("P_rect_02", np.c_[K, K @ t]))
    (out / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n" + row("R", R_rect.T @ Tr[:, :3])
        + row("T", R_rect.T @ (Tr[:, 3] - t)))
    return out


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("sensor", ["depth", "lidar", "lidar_raw"])
def test_node_positions_match_ground_truth(ros_client, start_node, namespace, tmp_path, sensor):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    t_start = time.monotonic()
    K, frames = _synth(tmp_path / "synth")
    assert frames[0][0].shape[:2] == (H, W) and frames[0][1].dtype == np.uint16
    camera, depth_topic = f"{namespace}/camera/image_raw", f"{namespace}/rgbd/depth_mm"
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub = ros_client.node.create_publisher(Image, camera, qos)
    pub_depth = ros_client.node.create_publisher(
        Image if sensor == "depth" else PointCloud2, depth_topic, qos)
    calib = tmp_path / "synth/training/calib/0000.txt"
    if sensor == "lidar_raw":  # the same camera, written as a raw drive's calibration
        calib = _raw_date_folder(calib, tmp_path / "raw" / "2011_09_26")
    sensor_args = (["-p", "use_depth:=true", "-r", f"depth:={depth_topic}"] if sensor == "depth"
                   else ["-p", "use_lidar:=true", "-r", f"points:={depth_topic}", "-p",
                         f"calib_file:={calib}"])
    pub_info = ros_client.node.create_publisher(CameraInfo, f"{namespace}/camera/camera_info",
                                                qos)  # the image's sibling: the default
    info = CameraInfo(height=H, width=W, distortion_model="plumb_bob")
    info.k = [float(v) for v in K.ravel()]
    ros_client.node.create_timer(0.1, lambda: pub_info.publish(info))
    collector = Collector(ros_client, namespace)
    standard = _StandardCollector(ros_client, namespace)
    node = start_node(["--params-file", "config/perception.yaml", "-r", f"image:={camera}",
                       *sensor_args, "-r", f"__ns:={namespace}",
                       "-p", f"checkpoint:={REPO / 'checkpoints' / 'stemseg_demo.pt'}",
                       "-p", "device:=cpu", "-p", "qos_reliability:=reliable",
                       "-p", "idle_flush_sec:=0.0", "-p", "max_queue_clips:=50",
                       "-p", "qos_depth:=50", "-p", "max_input_rate:=-1.0",
                       "-p", "expected_input_size:=640x192"])
    assert _wait_connected(ros_client, pub, collector, 90), node.log()
    assert ros_client.spin_until(lambda: pub_depth.get_subscription_count() > 0, 30), node.log()
    assert ros_client.spin_until(lambda: collector.diag_values().get("camera_matrix") == (
        f"camera_info {W}x{H}"), 30), collector.diag_values()
    ros_client.spin_for(1.0)  # reliable delivery needs the node's reader matched too
    headers = [_header(i) for i in range(N_FRAMES)]
    for i, (rgb, depth, _, scan) in enumerate(frames):
        if i not in NO_DEPTH:  # the depth first: the node pairs when it publishes the frame
            pub_depth.publish(cv.array_to_image(depth, "16UC1", headers[i]) if sensor == "depth"
                              else _cloud(scan[:, :3], stamp_ns=cv.stamp_ns(headers[i])))
            ros_client.spin_for(0.1)
        pub.publish(cv.array_to_image(rgb, "rgb8", headers[i]))
        ros_client.spin_for(0.1)
    want = {"frames_in": str(N_FRAMES), f"{'depth' if sensor == 'depth' else 'points'}_in":
            str(N_FRAMES - len(NO_DEPTH))}
    assert ros_client.spin_until(lambda: all(collector.diag_values().get(k) == v
                                             for k, v in want.items()), 30), (
        {k: collector.diag_values().get(k) for k in want})
    _flush(ros_client, namespace)
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_FRAMES, 60), node.log()
    ros_client.spin_until(lambda: collector.diag_values().get("frames_3d") == str(
        N_FRAMES - len(NO_DEPTH)), 5)
    assert node.alive(), node.log()

    errors, n_pub, n_pos = [], 0, 0
    for i, msg in enumerate(collector.instances):
        assert msg.header.stamp == headers[i].stamp
        got = cv.msg_to_frame_result(msg).instances
        n_pub += len(msg.instances)
        if i in NO_DEPTH:
            assert msg.instances and not any(m.has_position or m.has_velocity
                                             for m in msg.instances)
            continue
        n_pos += sum(m.has_position for m in msg.instances)
        gt = frames[i][2].instances
        gt_pos = [o.position for o in lift_from_depth([g.mask for g in gt], frames[i][1], K)]
        for m, inst in zip(msg.instances, got):
            ious = [(inst.mask & g.mask).sum() / max((inst.mask | g.mask).sum(), 1) for g in gt]
            k = int(np.argmax(ious)) if ious else -1
            if k < 0 or ious[k] < 0.5 or not np.isfinite(gt_pos[k]).all():
                continue
            if sensor == "depth":  # (a LiDAR scan may miss a small far object)
                assert m.has_position, f"frame {i} track {m.track_id}: no position"
            elif not m.has_position:
                continue
            p = np.array([m.position.x, m.position.y, m.position.z])
            err = float(np.linalg.norm(p - gt_pos[k]))
            errors.append((err, max(0.5, 0.05 * float(np.linalg.norm(gt_pos[k]))),
                           m.class_name))
            assert m.size.x > 0 and m.size.y > 0 and math.isfinite(m.size.z)
    assert len(errors) >= 10, (len(errors), n_pub)
    within = sum(e <= tol for e, tol, _ in errors) / len(errors)
    errs = np.array([e for e, _, _ in errors])
    assert within >= BOUNDS[sensor][0] and np.median(errs) <= BOUNDS[sensor][1], sorted(errors)
    # velocity: the tracks that had positions in two frames have one
    assert any(m.has_velocity for msg in collector.instances for m in msg.instances)
    standard.check(ros_client, collector.instances)
    diag = collector.diag_values()
    assert diag["depth_dropped"] == diag["points_dropped"] == "0"
    assert diag["frames_without_3d"] == str(len(NO_DEPTH))
    assert node.stop() == 0, node.log()
    print(f"\n3-D from {sensor} over DDS: {len(errors)} matched instances (of {n_pub} published, "
          f"{n_pos} with a position), error median {np.median(errs):.3f} m, p90 "
          f"{np.percentile(errs, 90):.3f} m, {within:.0%} within max(0.5 m, 5 %); per class: "
          + ", ".join(
              f"{c} median {np.median([e for e, _, k in errors if k == c]):.3f} m (n="
              f"{sum(k == c for _, _, k in errors)})" for c in sorted({k for *_, k in errors}))
          + "; lift "
          f"{float(diag['lift_time_per_frame_s']) * 1e3:.2f} ms/frame; "
          f"test {time.monotonic() - t_start:.0f} s")


@pytest.mark.ros
@pytest.mark.slow
def test_lidar_with_a_missing_calib_file_fails_activate_and_the_node_stays_up(
        tiny_checkpoint, start_node, namespace, tmp_path):
    missing = tmp_path / "no_calib.txt"
    node = start_node(["-r", f"__ns:={namespace}", "-p", f"checkpoint:={tiny_checkpoint}",
                       "-p", "device:=cpu", "-p", "use_lidar:=true",
                       "-p", f"calib_file:={missing}"])
    assert node.wait_for_log("activate failed", 90), node.log()
    assert str(missing) in node.log() and node.alive(), node.log()
    assert node.stop() == 0, node.log()
