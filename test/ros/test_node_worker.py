"""The node's pieces in-process (no second process): worker faults, intake skipping, lifecycle
with bad checkpoints, live parameters, diagnostics. DDS behaviour is in test_node.py."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ros_helpers import LOW_THRESHOLDS, make_frames, unique_domain

from stemseg_core.inference.stream_policy import StreamSession
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_ros import conversions as cv
from stemseg_ros.worker import FlushRequest, Frame, FrameQueue, Stats, Worker


class Log:
    """Stands in for the rclpy logger: keeps the messages by level."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level):
        return lambda msg, **kw: self.lines.append((level, msg))

    def text(self, level: str) -> str:
        return "\n".join(m for lv, m in self.lines if lv == level)


def _frame(i: int, img: np.ndarray) -> Frame:
    from std_msgs.msg import Header

    h = Header(frame_id="cam")
    h.stamp.sec = 100 + i
    return Frame(img, h, (100 + i) * 10**9, None, time.monotonic())


# ----------------------------------------------------------------------------------------------
# Queue and worker


def test_frame_queue_drops_oldest_frame_but_keeps_flush_requests():
    q = FrameQueue(3)
    assert [q.put_frame(i) for i in range(3)] == [0, 0, 0]
    flush = FlushRequest()
    q.put_control(flush)
    assert q.put_frame(3) == 1  # 0 dropped
    assert q.put_frame(4) == 1  # 1 dropped
    assert len(q) == 3
    assert [q.get(0.01) for _ in range(5)] == [2, flush, 3, 4, None]


def test_frame_queue_get_waits_for_a_frame():
    q = FrameQueue(2)
    threading.Timer(0.05, q.put_frame, args=("x",)).start()
    assert q.get(5.0) == "x"


class FailingTracker:
    """Wraps a real tracker; raises `error` on the push numbers listed in `fail_at`."""

    def __init__(self, tracker, fail_at, error):
        self.tr, self.fail_at, self.error, self.pushes = tracker, set(fail_at), error, 0

    def __getattr__(self, name):
        return getattr(self.tr, name)

    def push(self, image, stamp):
        self.pushes += 1
        if self.pushes in self.fail_at:
            self.tr.push(image, stamp)  # buffered, then the "clip" fails
            raise self.error
        return self.tr.push(image, stamp)


def _stream_then_flush(tracker, n: int) -> tuple[dict, Log, list]:
    """n frames through a Worker on `tracker`, then ~/flush; (counters, log, results)."""
    stats, log, got = Stats(), Log(), []
    w = Worker(StreamSession(tracker), FrameQueue(100), stats, got.extend, log)
    w.start()
    for i, img in enumerate(make_frames(n)):
        w.queue.put_frame(_frame(i, img))
    done = FlushRequest()
    w.queue.put_control(done)
    assert done.done.wait(60)
    assert w.stop(60)
    return stats.snapshot(), log, got


@pytest.mark.parametrize("error,counter", [
    (RuntimeError("boom in the network"), "worker_errors"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out_of_memory"),
])
def test_worker_survives_a_failing_clip(tiny_checkpoint, error, counter):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    tr.set_thresholds(**LOW_THRESHOLDS)
    s, log, got = _stream_then_flush(FailingTracker(tr, {3}, error), 9)
    assert s[counter] == 1 and s["dropped"] == 3 and s["resets"] == 1
    # frames 0-2 were lost with the failed push; 3..8 answered, in order, IDs not reused
    assert [r.stamp.stamp_ns // 10**9 - 100 for r in got] == list(range(3, 9))
    assert any(r.instances for r in got)
    if counter == "worker_errors":
        assert "Traceback" in log.text("error") and "boom in the network" in log.text("error")
    else:
        assert "out of memory: skipped the clip (3 frame(s) dropped)" in log.text("error")


def test_frames_of_a_clip_that_failed_in_the_tracker_are_counted_dropped(tiny_checkpoint):
    """A real tracker clears a failed clip's frames itself before the worker hears of it:
    the four frames still count as dropped (frames_in = frames_out + dropped)."""
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    tr.warmup(64, 128, every_length=True)  # the node's warm-up: then the first clip fails
    forward = tr._forward
    calls = []
    tr._forward = lambda clip: (calls.append(1), 1 / 0 if len(calls) == 1 else forward(clip))[1]
    s, log, got = _stream_then_flush(tr, 8)
    assert s["worker_errors"] == 1 and s["dropped"] == 4 and len(got) == 4
    assert "4 buffered frame(s) dropped" in log.text("error")


def test_worker_pause_finalises_the_clip_and_gives_memory_back_once(tiny_checkpoint,
                                                                      monkeypatch):
    import stemseg_ros.worker as W

    released = []
    monkeypatch.setattr(W, "release_memory", lambda: released.append(time.monotonic()))
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    tr.set_thresholds(**LOW_THRESHOLDS)
    got: list = []
    w = Worker(StreamSession(tr), FrameQueue(100), Stats(), got.extend, Log(),
               idle_flush_sec=0.2)
    w.start()
    frames = make_frames(3)
    assert tr.clip_length > 2  # two frames make a partial clip
    for i in range(2):
        w.queue.put_frame(_frame(i, frames[i]))
    deadline = time.monotonic() + 60
    while not released and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(got) == 2 and len(released) == 1  # partial clip finalised, memory freed
    time.sleep(0.6)  # the pause goes on: nothing more to finalise or free
    assert len(released) == 1
    w.queue.put_frame(_frame(2, frames[2]))
    while len(released) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(got) == 3 and len(released) == 2  # a new pause after a new frame
    assert w.stop(60)


# ----------------------------------------------------------------------------------------------
# The node object (private rclpy context, no DDS traffic needed)


@pytest.fixture
def make_node():
    import rclpy
    from rclpy.parameter import Parameter

    from stemseg_ros.node import PerceptionNode

    made = []

    def make(**values):
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=unique_domain())
        values = {"device": "cpu", "autostart": False, **values}
        n = PerceptionNode(context=ctx, namespace="/cam1", parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        made.append((n, ctx))
        return n

    yield make
    for n, ctx in made:
        n.shutdown_now()
        n.destroy_node()
        rclpy.shutdown(context=ctx)


def test_bad_checkpoints_fail_configure_and_the_node_stays_configurable(make_node, tmp_path,
                                                                         tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    node = make_node(checkpoint=str(tmp_path / "missing.pt"), allow_remote_model_change=True)
    assert node.trigger_configure() == R.FAILURE
    assert node._state_machine.current_state[1] == "unconfigured"
    for bad in (str(damaged), str(tmp_path)):
        node.set_parameters([Parameter("checkpoint", value=bad)])
        assert node.trigger_configure() == R.FAILURE
    node.set_parameters([Parameter("checkpoint", value=str(tiny_checkpoint))])
    assert node.trigger_configure() == R.SUCCESS
    assert node.trigger_activate() == R.SUCCESS
    assert node.trigger_deactivate() == R.SUCCESS
    assert node._model.tracker is None  # the model is freed on deactivate


def test_configure_error_names_file_and_problem(make_node, tmp_path, caplog):
    from rclpy.lifecycle import TransitionCallbackReturn as R

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint at all")
    node = make_node(checkpoint=str(damaged))
    errors = []
    node.get_logger().error = lambda msg, **kw: errors.append(msg)
    assert node.trigger_configure() == R.FAILURE
    assert str(damaged) in errors[-1] and "cannot load checkpoint" in errors[-1]


def test_parameters_live_and_loading(make_node, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter

    node = make_node(checkpoint=str(tiny_checkpoint), seediness_threshold=1,  # int for a float
                     allow_remote_model_change=True)
    assert node.get_parameter("seediness_threshold").value == 1.0
    assert node.get_parameter("classes").value == []  # shows its value without being set
    assert node.trigger_configure() == R.SUCCESS
    assert node.set_parameters([Parameter("backend", value="torch")])[0].successful  # inactive
    assert node.trigger_activate() == R.SUCCESS
    ok = node.set_parameters([Parameter("seediness_threshold", value=1)])[0]
    assert ok.successful and node.get_parameter("seediness_threshold").value == 1.0
    for name, value, reason in [
        ("checkpoint", "other.pt", "deactivate, set it, activate again"),
        ("allow_pickle", True, "read-only"),
        ("classes", ["truck"], "truck"),
        ("mask_threshold", 1.5, "mask_threshold"),
        ("min_mask_area_per_class", "{car: -3}", "min_mask_area_per_class"),
    ]:
        res = node.set_parameters([Parameter(name, value=value)])[0]
        assert not res.successful and reason in res.reason, (name, res.reason)
    res = node.set_parameters([Parameter("min_mask_area_per_class", value="{pedestrian: 60}")])
    assert res[0].successful
    node._worker._apply_thresholds()
    tr = node._worker.session.tracker
    assert tr.seediness_threshold == 1.0 and tr.min_mask_area_per_class == {"pedestrian": 60}
    assert node.set_parameters([Parameter("gap_reset_sec", value=2)])[0].successful
    assert node._worker.session.gap_reset_sec == 2.0


def test_intake_skips_evenly_and_diagnostics(make_node, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from std_msgs.msg import Header

    node = make_node(checkpoint=str(tiny_checkpoint), max_input_rate=5.0, max_queue_clips=10)
    assert node.trigger_configure() == R.SUCCESS
    assert node.trigger_activate() == R.SUCCESS
    node._worker.stop(10, flush=False)  # keep what the intake enqueues
    img = make_frames(1)[0]
    for i in range(30):  # 30 Hz for 1 s
        h = Header()
        h.stamp.sec, h.stamp.nanosec = 50 + i // 30, (i % 30) * 33_333_333
        node._intake.on_image(cv.array_to_image(img, "rgb8", h))
    queued = [node._worker.queue.get(0) for _ in range(len(node._worker.queue))]
    assert [f.stamp_ns % 10**9 // 33_333_333 for f in queued] == [0, 6, 12, 18, 24]
    assert queued[1].prev_stamp_ns == queued[1].stamp_ns - 33_333_333  # the skipped frame
    values = {}
    node._pub_diag.publish = lambda arr: values.update(
        {kv.key: kv.value for kv in arr.status[0].values}, name=arr.status[0].name,
        hw=arr.status[0].hardware_id)
    node._on_timer()
    assert values["name"] == "/cam1/stemseg_perception: pipeline"
    assert values["hw"] not in ("", "cpu")  # the CPU's model name
    assert values["frames_in"] == "30" and values["frames_skipped"] == "25"


def test_flush_waits_for_the_worker_without_holding_the_one_executor_thread(make_node,
                                                                           tiny_checkpoint):
    """~/flush is answered when the worker reaches the request; meanwhile the node's other
    services answer on the same single-threaded executor (as the node's process spins it)."""
    import rclpy
    from lifecycle_msgs.srv import GetState
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from std_srvs.srv import Trigger

    node = make_node(checkpoint=str(tiny_checkpoint))
    assert node.trigger_configure() == R.SUCCESS
    assert node.trigger_activate() == R.SUCCESS
    node._worker.stop(10, flush=False)  # the test plays the worker
    client = rclpy.create_node("flush_client", context=node.context, namespace="/cam1")
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.add_node(client)

    def spin_until(done, timeout=10.0):
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return done()

    flush_cli = client.create_client(Trigger, "stemseg_perception/flush")
    state_cli = client.create_client(GetState, "stemseg_perception/get_state")
    assert spin_until(lambda: flush_cli.service_is_ready() and state_cli.service_is_ready())
    flushed = flush_cli.call_async(Trigger.Request())
    assert spin_until(lambda: bool(node._worker.queue._items))  # the request is queued
    state = state_cli.call_async(GetState.Request())
    assert spin_until(state.done)
    assert state.result().current_state.label == "active" and not flushed.done()
    req = node._worker.queue.get(0)
    assert isinstance(req, FlushRequest) and req.notify is not None
    req.published = 3
    req.finish()
    assert spin_until(flushed.done)
    assert flushed.result().success and flushed.result().message == "finalised 3 frame(s)"
    executor.shutdown()
    client.destroy_node()


# ----------------------------------------------------------------------------------------------
# Diagnostics (pure)


def test_status_level_looks_at_a_recent_window_counters_stay_cumulative():
    from diagnostic_msgs.msg import DiagnosticStatus

    from stemseg_ros.diagnostics import WINDOW_SEC, StatusBuilder

    b, stats = StatusBuilder("/cam1/stemseg_perception: pipeline"), Stats()
    values = {"state": "active", "input_publishers": "1", "input_topic": "/cam"}

    def status(t):
        return b.build(stats.snapshot(), values, "Some CPU", True, None, now=t)

    assert status(0.0).level == DiagnosticStatus.OK
    stats.add(frames_in=10, dropped=2)
    st = status(1.0)
    assert st.level == DiagnosticStatus.WARN and "2 frame(s) dropped" in st.message
    assert st.name == "/cam1/stemseg_perception: pipeline" and st.hardware_id == "Some CPU"
    assert status(1.0 + WINDOW_SEC / 2).level == DiagnosticStatus.WARN
    st = status(2.0 + WINDOW_SEC)  # the drops are older than the window
    assert st.level == DiagnosticStatus.OK
    assert {kv.key: kv.value for kv in st.values}["dropped_frames"] == "2"  # cumulative
    stats.add(worker_errors=1)
    assert status(3.0 + WINDOW_SEC).level == DiagnosticStatus.ERROR


def test_input_monitor_warns_by_name_with_the_fix():
    from stemseg_ros.diagnostics import STARVE_SEC, InputMonitor

    m = InputMonitor("/share/fastdds_large_images.xml")
    assert m.check("/cam/image_raw", 0, 0, now=0.0) is None  # nobody publishes: no claim
    assert m.check("/cam/image_raw", 1, 0, now=1.0) is None
    msg = m.check("/cam/image_raw", 1, 0, now=1.0 + STARVE_SEC)
    assert "matched on /cam/image_raw but no image arrived" in msg
    assert "FASTDDS_DEFAULT_PROFILES_FILE=/share/fastdds_large_images.xml" in msg
    m = InputMonitor("p.xml")
    m.check("/cam", 1, 0, now=0.0)
    m.lost = 30
    msg = m.check("/cam", 1, 10, now=2.0)
    assert "30 of 40 images on /cam were lost in transport" in msg
    m.check("/cam", 1, 100, now=9.0)
    assert m.check("/cam", 1, 200, now=20.0) is None  # no loss in the last window


def test_device_model_names_the_hardware():
    from stemseg_ros.diagnostics import device_model

    name = device_model("cpu")
    assert name and name != "cpu"


def test_auto_input_rate_follows_the_measured_time_per_frame():
    from types import SimpleNamespace

    from stemseg_ros.intake import AUTO_RATE_SHARE, Intake

    stats = Stats()
    intake = Intake(stats, Log())
    intake.params, intake.queue = SimpleNamespace(max_input_rate=0.0), FrameQueue(4)
    for i in range(3):  # the worker is behind: 3 of 4 queued
        intake.queue.put_frame(i)
    stats.costs.extend([0.01, 0.01])  # buffering only, no clip yet: no basis to skip
    assert intake.rate() == 0.0
    stats.clips = 1
    stats.costs.extend([0.3, 0.01])  # a clip every 2 frames: 0.0825 s per frame on average
    assert intake.rate() == pytest.approx(AUTO_RATE_SHARE / 0.0825)
    intake.queue.get(0.1)  # 2 of 4 waiting: a clip's frames arrived while one ran: keeping up
    assert intake.rate() == 0.0
    intake.params = SimpleNamespace(max_input_rate=-1.0)
    assert intake.rate() == 0.0  # every frame
    intake.params = SimpleNamespace(max_input_rate=7.5)
    assert intake.rate() == 7.5


def test_overlay_is_drawn_on_its_own_thread_and_keeps_the_newest():
    from stemseg_ros.overlay import QUEUE, OverlayDrawer

    started, gate, drawn = threading.Event(), threading.Event(), []

    def publish(bgr, header):
        started.set()
        gate.wait(10)
        drawn.append((threading.current_thread().name, header, bgr.shape))

    d = OverlayDrawer(publish, Log())
    img = np.zeros((4, 6, 3), np.uint8)
    d.submit(img, [], 0)
    assert started.wait(10)  # frame 0 is being drawn
    for i in range(1, QUEUE + 3):  # the queue keeps the newest QUEUE of these
        d.submit(img, [], i)
    gate.set()
    assert d.idle(10)
    d.close()
    assert [h for _, h, _ in drawn] == [0, *range(3, QUEUE + 3)]
    assert d.skipped == 2 and {t for t, _, _ in drawn} == {"stemseg-overlay"}
    assert drawn[0][2] == (4, 6, 3)


# ----------------------------------------------------------------------------------------------
# Hostile input in-process (issue 35; over DDS from another process: test_node_hostile.py)


def test_intake_refuses_images_over_max_image_pixels_and_decodes_jpeg_reduced(
        make_node, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from std_msgs.msg import Header

    # model input scaled to fit 64x32: a 512x256 JPEG decodes at 1/8 (64x32), no larger
    node = make_node(checkpoint=str(tiny_checkpoint), max_image_pixels=200_000,
                     input_width=64, input_height=32, max_input_rate=-1.0)
    assert node.trigger_configure() == R.SUCCESS
    assert node.trigger_activate() == R.SUCCESS
    node._worker.stop(10, flush=False)  # keep what the intake enqueues
    log = Log()
    node._intake.log = log
    h = Header()
    big = np.zeros((500, 500, 3), np.uint8)  # 250 000 px
    node._intake.on_image(cv.array_to_image(big, "rgb8", h))
    node._intake.on_image(cv.rgb_to_compressed(np.zeros((400, 600, 3), np.uint8), "png", h))
    assert node._stats.frames_too_large == 2 and len(node._worker.queue) == 0
    assert "over max_image_pixels" in log.text("warning") and "500x500" in log.text("warning")
    cam = np.zeros((256, 512, 3), np.uint8)
    cam[64:192, 128:384] = (200, 40, 40)
    node._intake.on_image(cv.rgb_to_compressed(cam, "jpeg", h))
    frame = node._worker.queue.get(0)
    assert frame.image.shape == (32, 64, 3) and frame.full_size == (256, 512)
    assert abs(int(frame.image[16, 32, 0]) - 200) < 20  # the picture, at 1/8
    assert node._stats.convert_errors == 0
    # a raising callback body is logged and dropped, never raised
    node._intake._take = lambda msg: 1 / 0
    node._intake.on_image(None)
    assert "ZeroDivisionError" in log.text("error")


def test_every_callback_refuses_instead_of_raising(make_node, tiny_checkpoint, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter

    from stemseg_ros import param_checks

    node = make_node(checkpoint=str(tiny_checkpoint))
    errors = []
    node.get_logger().error = lambda msg, **kw: errors.append(msg)
    res = node.set_parameters([Parameter("seediness_threshold_per_class", value="[" * 3000)])[0]
    assert not res.successful and len(res.reason) < 400 and "nested" in res.reason
    with monkeypatch.context() as m:  # anything else a check raises is a refusal too
        m.setattr(param_checks, "check_changes", lambda *a, **k: (_ for _ in ()).throw(
            RecursionError("maximum recursion depth exceeded")))
        res = node.set_parameters([Parameter("mask_threshold", value=0.5)])[0]
    assert not res.successful and "RecursionError" in res.reason
    with monkeypatch.context() as m:  # configure failing past the model load
        m.setattr(node, "create_timer", lambda *a, **k: 1 / 0)
        assert node.trigger_configure() == R.FAILURE
        assert any("configure failed: ZeroDivisionError" in e for e in errors)
    assert node.trigger_configure() == R.SUCCESS  # nothing half-made left behind
    assert node.trigger_activate() == R.SUCCESS
    with monkeypatch.context() as m:
        m.setattr(node._intake, "info", lambda: 1 / 0)
        assert node._on_timer() is None
    assert node.trigger_deactivate() == R.SUCCESS
