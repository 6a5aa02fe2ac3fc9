"""The perception node over real DDS: node in a child process, this test as the camera + consumer.

Each test starts `stemseg-perception` (the installed executable) with the tiny random-init
checkpoint, feeds a synthetic sequence frame by frame and compares what comes out with what
StreamingTracker gives offline on the same frames.
"""
from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import LOW_THRESHOLDS, make_frames, offline_results

from stemseg_core.config import LIVE_THRESHOLD_BY_NAME
from stemseg_ros import conversions as cv
from stemseg_ros import names
from stemseg_ros.qos import matching_reliability

N_FRAMES = 9  # T=4, Tc=2: clips at frames 4, 6, 8 and a flushed partial clip for frame 9
# every frame answered (no skipping), as offline
_LOW = [f"{k}:={v}" for k, v in LOW_THRESHOLDS.items()] + ["max_input_rate:=-1.0"]


# ----------------------------------------------------------------------------------------------
# Pure helpers (no DDS)


def test_auto_qos_matches_publishers():
    from rclpy.qos import ReliabilityPolicy as R

    assert matching_reliability([]) == "best_effort"
    assert matching_reliability([R.RELIABLE, R.RELIABLE]) == "reliable"
    assert matching_reliability([R.RELIABLE, R.BEST_EFFORT]) == "best_effort"


# ----------------------------------------------------------------------------------------------
# Over DDS


class Collector:
    """Subscribes to the node's outputs and keeps every message."""

    def __init__(self, client, ns: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from stemseg_ros.msg import TrackedInstanceArray

        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.instances, self.overlay, self.track_ids, self.diagnostics = [], [], [], []
        n = client.node
        self.ns = ns
        self.subs = [
            n.create_subscription(TrackedInstanceArray, names.node_topic(names.INSTANCES, ns),
                                  self.instances.append, qos),
            n.create_subscription(Image, names.node_topic(names.OVERLAY, ns),
                                  self.overlay.append, qos),
            n.create_subscription(Image, names.node_topic(names.TRACK_IDS, ns),
                                  self.track_ids.append, qos),
            n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10),
        ]

    def diag_values(self) -> dict[str, str]:
        """Key/values of the latest status of our node."""
        for arr in reversed(self.diagnostics):
            for st in arr.status:
                if names.is_status_of(st.name, self.ns):
                    return {kv.key: kv.value for kv in st.values}
        return {}


def _header(i: int):
    from std_msgs.msg import Header

    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = 100 + i // 10, (i % 10) * 100_000_000  # 10 Hz
    return h


def _wait_node_subscribed(client, topic: str, reliable: bool, timeout: float) -> bool:
    from rclpy.qos import ReliabilityPolicy

    def ok():
        infos = client.node.get_subscriptions_info_by_topic(topic)
        return any((i.qos_profile.reliability == ReliabilityPolicy.RELIABLE) == reliable
                   for i in infos)

    return client.spin_until(ok, timeout)


def _wait_connected(client, pub, collector, timeout: float = 60) -> bool:
    """True once both ends matched: our writer sees the node's reader and the node's reader our
    writer (its diagnostics count input publishers). Reliable QoS does not deliver what a writer
    sends before the reader has matched it, so streaming earlier can lose the first frames."""
    return client.spin_until(
        lambda: pub.get_subscription_count() > 0
        and int(collector.diag_values().get("input_publishers", "0")) > 0, timeout)


def _stream(client, pub, msgs, collector, frames_in: int) -> None:
    """Publish frame by frame; return once the node's diagnostics count `frames_in` received.

    The node's executor takes one image per cycle, so a ~/flush request sent right after the
    last publish can overtake images still waiting in the node's reader; the flush would then
    finalise too early and the last frames would wait for a flush that never comes.
    """
    for m in msgs:
        pub.publish(m)
        client.spin_for(0.05)
    assert client.spin_until(
        lambda: collector.diag_values().get("frames_in") == str(frames_in), 60), (
        f"the node did not report frames_in={frames_in}: {collector.diag_values()}")


def _flush(client, ns: str) -> str:
    from std_srvs.srv import Trigger

    resp = client.call(Trigger, f"{ns}/stemseg_perception/flush", Trigger.Request(), 120.0)
    assert resp is not None, "~/flush did not answer"
    assert resp.success, resp.message
    return resp.message


def _assert_matches_offline(got_msgs, reference, headers) -> None:
    assert len(got_msgs) == len(reference), (len(got_msgs), len(reference))
    n_instances = 0
    for msg, ref, hdr in zip(got_msgs, reference, headers):
        assert msg.header.frame_id == hdr.frame_id
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (hdr.stamp.sec,
                                                                     hdr.stamp.nanosec)
        assert (msg.height, msg.width) == ref.image_size
        got = cv.msg_to_frame_result(msg)
        want = {i.track_id: i for i in ref.instances}
        assert sorted(i.track_id for i in got.instances) == sorted(want), f"frame {ref.index}"
        for inst in got.instances:
            w = want[inst.track_id]
            assert (inst.class_id, inst.class_name) == (w.class_id, w.class_name)
            assert abs(inst.score - w.score) < 1e-5
            np.testing.assert_array_equal(inst.mask, w.mask, err_msg=f"frame {ref.index}")
        n_instances += len(got.instances)
    assert n_instances > 0, "the reference has no instance at all: the comparison proves nothing"


@pytest.mark.ros
@pytest.mark.slow
def test_raw_stream_matches_offline_tracker(tiny_checkpoint, ros_client, start_node, namespace):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    frames = make_frames(N_FRAMES)
    reference = offline_results(tiny_checkpoint, frames, LOW_THRESHOLDS)
    camera = f"{namespace}/camera/image_raw"
    pub = ros_client.node.create_publisher(
        Image, camera, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    collector = Collector(ros_client, namespace)
    # Exactly the documented command line, plus the test's checkpoint and namespace.
    node = start_node(["--params-file", "config/perception.yaml", "-r", f"image:={camera}",
                       "-r", f"__ns:={namespace}", "-p", f"checkpoint:={tiny_checkpoint}",
                       "-p", "device:=cpu", "-p", "qos_reliability:=auto",
                       "-p", "idle_flush_sec:=0.0", "-p", "max_queue_clips:=50",
                       "-p", "qos_depth:=50",
                       *sum([["-p", a] for a in _LOW], [])])
    # qos_reliability auto: our publisher is reliable, so the node subscribes reliable.
    assert _wait_node_subscribed(ros_client, camera, reliable=True, timeout=90), node.log()
    assert _wait_connected(ros_client, pub, collector), node.log()

    # Frames that cannot be converted are logged, counted and dropped; the node goes on.
    bad = cv.array_to_image(frames[0], "rgb8", _header(-1))
    bad.encoding = "yuv999"
    short = cv.array_to_image(frames[0], "rgb8", _header(-1))
    short.data = bytes(short.data)[:100]
    for m in (bad, short):
        pub.publish(m)
    headers = [_header(i) for i in range(N_FRAMES)]
    msgs = [cv.array_to_image(np.ascontiguousarray(f[..., ::-1]), "bgr8", h)
            for f, h in zip(frames, headers)]
    _stream(ros_client, pub, msgs, collector, N_FRAMES + 2)  # + the 2 bad frames
    flushed = _flush(ros_client, namespace)
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_FRAMES, 60), (
        f"{len(collector.instances)} results; flush said {flushed!r}\n{node.log()}")
    ros_client.spin_until(lambda: len(collector.track_ids) >= N_FRAMES
                          and len(collector.overlay) >= N_FRAMES, 20)
    ros_client.spin_until(lambda: collector.diag_values().get("frames_out") == str(N_FRAMES), 5)
    assert node.alive(), node.log()

    _assert_matches_offline(collector.instances, reference, headers)
    assert len(collector.overlay) == len(collector.track_ids) == N_FRAMES
    for ov, ids, ref, hdr in zip(collector.overlay, collector.track_ids, reference, headers):
        assert (ov.encoding, ov.height, ov.width) == ("bgr8", 64, 128)
        assert (ids.encoding, ids.height, ids.width) == ("32SC1", 64, 128)
        assert ov.header.stamp == hdr.stamp and ids.header.stamp == hdr.stamp
        id_img = cv.image_to_array(ids).view(np.uint32)
        want = np.zeros((64, 128), np.uint32)
        for inst in ref.instances:
            want[inst.mask] = inst.track_id
        np.testing.assert_array_equal(id_img, want)
    diag = collector.diag_values()
    assert diag, "no /diagnostics from the node"
    assert diag["conversion_errors"] == "2" and diag["dropped_frames"] == "0"
    assert diag["input_publishers"] == "1"
    assert diag["device"] == "cpu" and float(diag["model_time_per_clip_s"]) > 0
    assert diag["backend"] == "torch fp32", diag  # the tests' pinned backend (ros_helpers)
    for key in ("input_rate_hz", "output_rate_hz", "latency_receive_to_publish_p50_s",
                "queue_depth", "tracker_time_per_frame_s", "node_time_per_frame_s"):
        assert key in diag
    log = node.log()
    assert "unsupported image encoding 'yuv999'" in log
    assert node.stop() == 0, node.log()  # Ctrl-C ends it cleanly
    print(f"\nnode overhead per frame {float(diag['node_time_per_frame_s']) * 1e3:.2f} ms vs "
          f"tracker {float(diag['tracker_time_per_frame_s']) * 1e3:.2f} ms per frame")


def _change_state(client, ns: str, transition: int) -> bool:
    from lifecycle_msgs.srv import ChangeState

    req = ChangeState.Request()
    req.transition.id = transition
    resp = client.call(ChangeState, f"{ns}/stemseg_perception/change_state", req, 120.0)
    assert resp is not None, "change_state did not answer"
    return bool(resp.success)


def _state(client, ns: str) -> str:
    from lifecycle_msgs.srv import GetState

    resp = client.call(GetState, f"{ns}/stemseg_perception/get_state", GetState.Request(), 90.0)
    assert resp is not None, "get_state did not answer"
    return resp.current_state.label


def _set_params(client, ns: str, **values):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    req = SetParameters.Request()
    req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
    resp = client.call(SetParameters, f"{ns}/stemseg_perception/set_parameters", req, 30.0)
    assert resp is not None, "set_parameters did not answer"
    return resp.results


@pytest.mark.ros
@pytest.mark.slow
def test_bad_param_file_fails_configure_and_node_stays_up(tiny_checkpoint, ros_client,
                                                           start_node, namespace, tmp_path):
    from lifecycle_msgs.msg import Transition

    params = tmp_path / "bad.yaml"
    params.write_text("/**:\n  ros__parameters:\n    autostart: false\n"
                      f"    checkpoint: {tiny_checkpoint}\n    device: cpu\n"
                      "    mask_threshold: 1.5\n    qos_reliability: sometimes\n")
    node = start_node(["--params-file", str(params), "-r", f"__ns:={namespace}"])
    assert _state(ros_client, namespace) == "unconfigured"
    assert not _change_state(ros_client, namespace, Transition.TRANSITION_CONFIGURE)
    assert node.wait_for_log("configure failed", 10)
    log = node.log()
    assert "parameter 'mask_threshold'" in log and "value (1.5)" in log, log
    high = LIVE_THRESHOLD_BY_NAME["mask_threshold"].high
    assert f"expected float in [-1.0, {high}]" in log, log
    assert node.alive()
    assert _state(ros_client, namespace) == "unconfigured"
    # The range is enforced on set too, with the reason.
    res = _set_params(ros_client, namespace, mask_threshold=2.0)
    assert not res[0].successful and "mask_threshold" in res[0].reason
    # Fix the values: the next configure passes the first check and names the next bad one.
    assert all(r.successful for r in _set_params(ros_client, namespace, mask_threshold=0.5))
    assert not _change_state(ros_client, namespace, Transition.TRANSITION_CONFIGURE)
    assert node.wait_for_log("parameter 'qos_reliability'", 10), node.log()
    assert "one of best_effort, reliable, auto" in node.log()
    assert all(r.successful for r in _set_params(ros_client, namespace,
                                                 qos_reliability="reliable"))
    assert _change_state(ros_client, namespace, Transition.TRANSITION_CONFIGURE), node.log()
    assert _state(ros_client, namespace) == "inactive"
    assert node.alive()


@pytest.mark.ros
@pytest.mark.slow
def test_lifecycle_cycle_and_compressed_png_input(tiny_checkpoint, ros_client, start_node,
                                                  namespace):
    from lifecycle_msgs.msg import Transition
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    frames = make_frames(N_FRAMES)
    reference = offline_results(tiny_checkpoint, frames, LOW_THRESHOLDS)
    node = start_node(["-r", f"__ns:={namespace}", "-p", "autostart:=false",
                       "-p", f"checkpoint:={tiny_checkpoint}", "-p", "device:=cpu",
                       "-p", "qos_reliability:=reliable", "-p", "idle_flush_sec:=0.0",
                       # reliable delivers only what the reader's history holds: deep enough
                       # for the whole burst (the default 5 lost a frame on a loaded machine)
                       "-p", "qos_depth:=50",
                       "-p", "max_queue_clips:=50", "-p", "publish_overlay:=false",
                       "-p", "max_input_rate:=-1.0"])
    ns = namespace
    assert _state(ros_client, ns) == "unconfigured"
    assert _change_state(ros_client, ns, Transition.TRANSITION_CONFIGURE), node.log()
    assert _change_state(ros_client, ns, Transition.TRANSITION_ACTIVATE), node.log()
    assert _state(ros_client, ns) == "active"
    # Live: thresholds apply at once; reload-only parameters are refused with a reason.
    assert all(r.successful for r in _set_params(ros_client, ns, **LOW_THRESHOLDS))
    res = _set_params(ros_client, ns, clip_length=8)
    assert not res[0].successful and "deactivate" in res[0].reason
    assert _change_state(ros_client, ns, Transition.TRANSITION_DEACTIVATE), node.log()
    assert _state(ros_client, ns) == "inactive"
    assert _change_state(ros_client, ns, Transition.TRANSITION_CLEANUP), node.log()
    assert _state(ros_client, ns) == "unconfigured"
    # While not active the input can be switched to compressed.
    assert all(r.successful for r in _set_params(ros_client, ns, input_transport="compressed"))
    assert _change_state(ros_client, ns, Transition.TRANSITION_CONFIGURE), node.log()
    assert _change_state(ros_client, ns, Transition.TRANSITION_ACTIVATE), node.log()
    assert _state(ros_client, ns) == "active"
    assert node.alive()

    topic = f"{ns}/image/compressed"
    pub = ros_client.node.create_publisher(
        CompressedImage, topic, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    collector = Collector(ros_client, ns)
    assert _wait_connected(ros_client, pub, collector), node.log()
    headers = [_header(i) for i in range(N_FRAMES)]
    msgs = [cv.rgb_to_compressed(f, "png", h) for f, h in zip(frames, headers)]
    _stream(ros_client, pub, msgs, collector, N_FRAMES)
    flushed = _flush(ros_client, ns)
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_FRAMES, 60), (
        f"{len(collector.instances)} results; flush said {flushed!r}\n{node.log()}")
    ros_client.spin_for(0.3)
    # Thresholds were set live before the cleanup, and kept through configure/activate.
    _assert_matches_offline(collector.instances, reference, headers)
    assert collector.overlay == []  # publish_overlay: false
    assert len(collector.track_ids) == N_FRAMES
    max_id = max(i.track_id for m in collector.instances for i in m.instances)

    # Idle flush (live parameter): a lone frame is finalised without ~/flush.
    assert all(r.successful for r in _set_params(ros_client, ns, idle_flush_sec=0.5))
    pub.publish(cv.rgb_to_compressed(frames[0], "png", _header(N_FRAMES)))
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_FRAMES + 1, 30), node.log()
    # A stamp back in time (bag restarted) resets the tracker; IDs are not reused.
    pub.publish(cv.rgb_to_compressed(frames[0], "png", _header(0)))
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_FRAMES + 2, 30), node.log()
    assert "jumped back in time" in node.log()
    restarted = collector.instances[-1]
    assert restarted.header.stamp == _header(0).stamp
    assert all(i.track_id > max_id for i in restarted.instances)
    assert restarted.instances, "the reset frame should have instances to check IDs on"

    # An incompatible publisher (best effort; the node asks for reliable) gets a clear warning.
    ros_client.node.create_publisher(
        CompressedImage, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    assert node.wait_for_log("incompatible QoS on input", 30), node.log()
    assert "qos_reliability" in node.log()

    assert _change_state(ros_client, ns, Transition.TRANSITION_DEACTIVATE), node.log()
    assert node.alive()
