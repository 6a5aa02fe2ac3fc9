"""Engines for the camera's size before its first frame (issue 40): camera_info, else
expected_input_size, else a warm-up on the first frame that the log and /diagnostics show."""
from __future__ import annotations

import threading
import time

import pytest
from ros_helpers import LOW_THRESHOLDS, make_frames, unique_domain
from test_node_worker import Log, _frame

from stemseg_core.inference.stream_policy import StreamSession
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_ros.camera_size import camera_info_topic, parse_size
from stemseg_ros.worker import FlushRequest, FrameQueue, Stats, Worker


def test_sizes_and_the_camera_info_topic():
    assert parse_size("1280x720") == (720, 1280) and parse_size(" 64X48 ") == (48, 64)
    assert parse_size("") is None
    for bad in ("1280", "1280x", "x720", "0x720", "12x-3", "1e3x2", "99999x1"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert camera_info_topic("/camera/image_raw") == "/camera/camera_info"
    assert camera_info_topic("/image") == "/camera_info"


@pytest.fixture
def make_node():
    import rclpy
    from rclpy.parameter import Parameter

    from stemseg_ros.node import PerceptionNode

    made = []

    def make(**values):
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=unique_domain())
        values = {"device": "cpu", "autostart": False, "backend": "torch", **values}
        n = PerceptionNode(context=ctx, namespace="/cam1", parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        made.append((n, ctx))
        return n, ctx

    yield make
    for n, ctx in made:
        n.shutdown_now()
        n.destroy_node()
        rclpy.shutdown(context=ctx)


def shapes(node) -> list:
    return node._worker.session.tracker.runner_shapes


def test_expected_input_size_builds_the_cameras_engines_on_activate(make_node, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R

    node, _ = make_node(checkpoint=str(tiny_checkpoint), expected_input_size="200x100")
    assert node.trigger_configure() == R.SUCCESS
    assert node.trigger_activate() == R.SUCCESS
    assert shapes(node) == [(3, 128, 224)]  # 100x200 padded; not the 64x128 training shape
    assert not node._worker.session.needs_build((100, 200))
    assert node._worker.session.needs_build((64, 128))


def test_camera_info_decides_the_size_over_the_parameter(make_node, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo

    node, ctx = make_node(checkpoint=str(tiny_checkpoint), expected_input_size="200x100")
    cam = Node("camera", context=ctx, namespace="/cam1")
    pub = cam.create_publisher(CameraInfo, "camera_info", 10)
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            pub.publish(CameraInfo(width=96, height=40))
            time.sleep(0.05)

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 10
        while node.count_publishers("/cam1/camera_info") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.trigger_configure() == R.SUCCESS
        assert node.trigger_activate() == R.SUCCESS
        assert shapes(node) == [(3, 64, 96)]  # 40x96 from camera_info, padded
    finally:
        stop.set()
        th.join(5)
        cam.destroy_node()


def test_an_unknown_size_warms_up_on_the_first_frame_and_says_so(tiny_checkpoint):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    tr.set_thresholds(**LOW_THRESHOLDS)
    session = StreamSession(tr)
    log, got, seen = Log(), [], []
    w = Worker(session, FrameQueue(100), Stats(), got.extend, log)
    real = session.prepare

    def watched(size):  # what /diagnostics shows while the engines are built
        seen.append(w.info().get("warming_up_for"))
        return real(size)

    session.prepare = watched
    w.start()
    for i, img in enumerate(make_frames(6, 40, 96)):
        w.queue.put_frame(_frame(i, img))
    done = FlushRequest()
    w.queue.put_control(done)
    assert done.done.wait(60) and w.stop(60)
    assert seen == ["96x40"]  # once, before the first frame; then nothing more to build
    assert "warming up for 96x40 frames" in log.text("warning")
    assert "warming_up_for" not in w.info()
    assert [r.image_size for r in got] == [(40, 96)] * 6
    assert tr.runner_shapes == [(3, 64, 96)] and tr.frames_pushed == 6
    assert any(r.instances for r in got)
