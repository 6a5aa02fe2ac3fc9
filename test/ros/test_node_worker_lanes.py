"""One worker, several cameras: lanes served in turn, each its own session, counters and
results; every camera's share of the input rate. No DDS."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from ros_helpers import LOW_THRESHOLDS
from test_node_worker import Log, _frame

from stemseg_ros.intake import AUTO_RATE_SHARE, Intake
from stemseg_ros.worker import FlushRequest, FrameQueue, Stats, Worker


class Session:
    """Stands in for a StreamSession: answers every frame at once, records the order."""

    def __init__(self, name: str, order: list) -> None:
        self.name, self.order = name, order
        self.resets = 0
        self.shapes = SimpleNamespace(resized=0)
        self.tracker = SimpleNamespace(pending=0, set_thresholds=lambda **kw: order.append(
            (name, "thresholds", kw)))

    def push(self, image, stamp_ns, meta, prev, size=None):
        self.order.append((self.name, stamp_ns // 10**9 - 100))
        return [SimpleNamespace(stamp=meta, instances=[])]

    def flush(self):
        self.order.append((self.name, "flush"))
        return []


def test_lanes_are_served_in_turn_with_their_own_sessions_and_counters():
    order: list = []
    got = {"a": [], "b": []}
    stats = {"a": Stats(), "b": Stats()}
    queues = {"a": FrameQueue(10), "b": FrameQueue(10)}
    w = Worker(Session("a", order), queues["a"], stats["a"], got["a"].extend, Log(), 0.0, "a")
    w.add_lane("b", Session("b", order), queues["b"], stats["b"], got["b"].extend)
    img = np.zeros((8, 8, 3), np.uint8)
    for i in range(3):  # a's frames all arrive before b's: still served in turn
        queues["a"].put_frame(_frame(i, img))
    for i in range(3):
        queues["b"].put_frame(_frame(10 + i, img))
    w.set_thresholds({"seediness_threshold": 0.5})
    w.start()
    deadline = time.monotonic() + 10
    while len(got["a"]) + len(got["b"]) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    reqs = [FlushRequest(), FlushRequest()]
    queues["a"].put_control(reqs[0])
    queues["b"].put_control(reqs[1])
    assert all(r.done.wait(10) for r in reqs)
    assert w.stop(10)
    frames = [o for o in order if len(o) == 2 and o[1] != "flush"]
    assert frames == [("a", 0), ("b", 10), ("a", 1), ("b", 11), ("a", 2), ("b", 12)]
    assert ("a", "thresholds", {"seediness_threshold": 0.5}) in order
    assert ("b", "thresholds", {"seediness_threshold": 0.5}) in order  # every lane's tracker
    assert [r.stamp.stamp_ns // 10**9 - 100 for r in got["b"]] == [10, 11, 12]
    assert stats["a"].snapshot()["tracker_sec"] > 0 and len(stats["b"].costs) == 3
    assert w.info("b")["queue_depth"] == "0" and w.session is w.lanes[0].session


def test_each_of_n_cameras_gets_its_share_of_the_input_rate():
    stats = Stats()
    intake = Intake(stats, Log(), share=0.5)
    intake.params, intake.queue = SimpleNamespace(max_input_rate=8.0), FrameQueue(4)
    assert intake.rate() == 4.0  # half of the set rate
    intake.params = SimpleNamespace(max_input_rate=0.0)
    for i in range(3):  # behind: 3 of 4 waiting
        intake.queue.put_frame(i)
    stats.clips = 1
    stats.costs.extend([0.1, 0.1])  # 0.1 s of the worker per frame of this camera
    assert intake.rate() == pytest.approx(AUTO_RATE_SHARE * 0.5 / 0.1)
    intake.params = SimpleNamespace(max_input_rate=-1.0)
    assert intake.rate() == 0.0  # every frame


def test_cameras_due_together_share_one_encoder_call_and_keep_their_results(tiny_checkpoint):
    """Two cameras of one TrackerGroup; each of b's frames reaches its queue 10 ms after a's.
    The worker's round waits for it where both clips fall due (worker.GATHER_SEC), so each due
    step is ONE encoder call with both clips' new frames (T = 4, overlap 2: 4 + 4, then 2 + 2);
    every camera's results equal its own tracker's."""
    from stemseg_core.inference.stream_policy import StreamSession
    from stemseg_core.inference.tracker import StreamingTracker
    from stemseg_core.inference.tracker_group import TrackerGroup

    def tracker():
        tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu", overrides=[
            "inference.backend=torch", "inference.precision=fp32"])
        tr.set_thresholds(**LOW_THRESHOLDS)  # instances to compare
        return tr

    rng = np.random.default_rng(3)
    images = {c: [rng.integers(0, 256, (64, 128, 3), dtype=np.uint8) for _ in range(6)]
              for c in "ab"}
    first = tracker()
    group = TrackerGroup(first, ["a", "b"])
    first.warmup()  # the shared runner, built before counting
    backend = first.runner.backend
    sizes: list[int] = []
    encode = backend.encode
    backend.encode = lambda x: (sizes.append(len(x)), encode(x))[1]
    got = {"a": [], "b": []}
    queues = {"a": FrameQueue(10), "b": FrameQueue(10)}
    stats = {"a": Stats(), "b": Stats()}
    w = Worker(group.sessions["a"], queues["a"], stats["a"], got["a"].extend, Log(), 0.0, "a")
    w.add_lane("b", group.sessions["b"], queues["b"], stats["b"], got["b"].extend)
    assert w.group is group
    w.start()
    try:
        for i in range(6):
            queues["a"].put_frame(_frame(i, images["a"][i]))
            time.sleep(0.01)
            queues["b"].put_frame(_frame(i, images["b"][i]))
            time.sleep(0.25)
        deadline = time.monotonic() + 20
        while min(len(got["a"]), len(got["b"])) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert w.stop(10, flush=False)
    assert sizes == [8, 4], sizes
    assert [stats[c].snapshot()["clips_batched"] for c in "ab"] == [2, 2]
    for k, c in enumerate("ab"):
        own = StreamSession(tracker())
        want = [r for i, im in enumerate(images[c]) for r in own.push(im, (100 + i) * 10**9, i)]
        assert any(r.instances for r in want)
        assert [r.stamp.stamp_ns for r in got[c]] == [(100 + i) * 10**9 for i in range(6)]
        assert [[(i.track_id, int(i.mask.sum())) for i in r.instances] for r in got[c]] == \
            [[((i.track_id - 1) * 2 + k + 1, int(i.mask.sum())) for i in r.instances]
             for r in want]


def test_one_cameras_publishing_failure_stays_with_it(tiny_checkpoint):
    """Camera a's publish raises once, in a round where both cameras' clips ran together:
    b's results of that round are still published and nothing is counted against b; a's
    error is counted on a, with its new track sequence."""
    from stemseg_core.inference.tracker import StreamingTracker
    from stemseg_core.inference.tracker_group import TrackerGroup

    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu", overrides=[
        "inference.backend=torch", "inference.precision=fp32"])
    group = TrackerGroup(tr, ["a", "b"])
    rng = np.random.default_rng(5)
    queues = {"a": FrameQueue(10), "b": FrameQueue(10)}
    stats = {"a": Stats(), "b": Stats()}
    got: dict[str, list] = {"a": [], "b": []}
    calls = []

    def publish_a(results):
        calls.append(len(results))
        if len(calls) == 1:
            raise RuntimeError("publisher gone")
        got["a"].extend(results)

    w = Worker(group.sessions["a"], queues["a"], stats["a"], publish_a, Log(), 0.0, "a")
    w.add_lane("b", group.sessions["b"], queues["b"], stats["b"], got["b"].extend)
    for i in range(6):  # queued before the start: every round holds frame i of both
        for c in "ab":
            queues[c].put_frame(_frame(i, rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)))
    w.start()
    done = {c: FlushRequest() for c in "ab"}
    for c in "ab":
        queues[c].put_control(done[c])
    assert all(d.done.wait(60) for d in done.values())
    assert w.stop(30, flush=False)
    a, b = stats["a"].snapshot(), stats["b"].snapshot()
    assert [r.stamp.stamp_ns // 10**9 - 100 for r in got["b"]] == list(range(6))
    assert b["worker_errors"] == 0 and b["resets"] == 0 and b["dropped"] == 0
    assert a["worker_errors"] == 1 and a["resets"] == 1
    assert calls[0] == 4 and [r.stamp.stamp_ns // 10**9 - 100 for r in got["a"]] == [4, 5]


def test_a_round_waits_only_for_a_camera_whose_next_frame_is_expected(tiny_checkpoint,
                                                                        monkeypatch):
    """Both cameras one frame short of a clip; a's frame is there. b's next frame expected
    within the gather window (its interval between frames 0.06 s): the round waits for it and
    takes both. b a slow camera (1 s between frames, the last 0.05 s ago): no wait at all."""
    import threading

    import stemseg_ros.worker as W
    from stemseg_core.inference.tracker import StreamingTracker
    from stemseg_core.inference.tracker_group import StreamFrame, TrackerGroup

    monkeypatch.setattr(W, "GATHER_SEC", 0.5)  # long, so that "no wait" is unmistakable
    group = TrackerGroup(StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu"),
                         ["a", "b"])
    img = np.zeros((64, 128, 3), np.uint8)
    for i in range(3):  # T = 4: both one frame short
        group.step([StreamFrame(c, img, i * 10**8, i) for c in "ab"])
    queues = {c: FrameQueue(10) for c in "ab"}
    w = Worker(group.sessions["a"], queues["a"], Stats(), lambda r: None, Log(), 0.0, "a")
    b = w.add_lane("b", group.sessions["b"], queues["b"], Stats(), lambda r: None)
    assert W.one_short(b) and W.one_short(w.lanes[0])

    def round_with_b(period: float, b_sends_after: float | None) -> tuple[list, float]:
        now = time.monotonic()
        b.idle, b.last_frame_time, b.last_received, b.period = False, now, now - 0.05, period
        queues["a"].put_frame(_frame(3, img))
        if b_sends_after is not None:
            threading.Timer(b_sends_after, queues["b"].put_frame, args=(_frame(3, img),)).start()
        t0 = time.monotonic()
        items = w._take_round()
        return [lane.name for lane, _ in items], time.monotonic() - t0

    names, waited = round_with_b(1.0, None)
    assert names == ["a"] and waited < 0.25, (names, waited)
    names, waited = round_with_b(0.06, 0.1)
    assert sorted(names) == ["a", "b"] and waited < 0.45, (names, waited)
