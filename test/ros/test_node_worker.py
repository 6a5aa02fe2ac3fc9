"""The node's worker logic in-process with a stand-in tracker: resets, ID offsets, live params.

No model and no second process: the node object is built in a private rclpy context and its
worker methods are called directly (the DDS behaviour is covered by test_node.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import unique_domain

from stemseg_core.inference.types import FrameResult, TrackedInstance
from stemseg_ros.node import Frame, PerceptionNode


class FakeTracker:
    """T=1: every push returns its frame at once, with one instance of tracker-local ID 1."""

    clip_length, clip_overlap, class_names = 1, 0, ["background", "car"]

    def __init__(self):
        self.calls, self.pending, self.last_timings, self.thresholds = [], 0, {}, {}

    def push(self, image, stamp):
        self.calls.append("push")
        mask = np.zeros(image.shape[:2], bool)
        mask[0, 0] = True
        return [FrameResult(0, stamp, image.shape[:2], [TrackedInstance(1, 1, "car", 0.9, mask)])]

    def flush(self):
        self.calls.append("flush")
        self.pending = 0
        return []

    def reset(self):
        self.calls.append("reset")

    def set_thresholds(self, **kw):
        self.thresholds.update(kw)


class Pub:
    def __init__(self):
        self.msgs = []

    def publish(self, m):
        self.msgs.append(m)

    def get_subscription_count(self):
        return 1


@pytest.fixture
def node(tmp_path):
    import rclpy
    from rclpy.parameter import Parameter

    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unique_domain())
    n = PerceptionNode(context=ctx, parameter_overrides=[
        Parameter("checkpoint", value=str(ckpt)), Parameter("device", value="cpu"),
        Parameter("gap_reset_sec", value=1.0)])
    n._read_params()
    n._tracker = FakeTracker()
    n._tracker_defaults = {"mask_threshold": 0.5}
    n._pub_instances, n._pub_overlay, n._pub_track_ids = Pub(), Pub(), Pub()
    n._active = True
    yield n
    n._active = False
    n._tracker = None
    n.destroy_node()
    rclpy.shutdown(context=ctx)


def _frame(t_sec: float, h: int = 4, w: int = 6) -> Frame:
    from std_msgs.msg import Header

    hdr = Header(frame_id="cam")
    ns = int(round(t_sec * 1e9))
    hdr.stamp.sec, hdr.stamp.nanosec = ns // 10**9, ns % 10**9
    return Frame(np.zeros((h, w, 3), np.uint8), hdr, ns, 0.0)


def _ids(node):
    return [m.instances[0].track_id for m in node._pub_instances.msgs]


def test_resets_on_size_change_time_jump_and_gap_and_ids_are_not_reused(node):
    tr = node._tracker
    for t in (10.0, 10.1, 10.2):
        node._process(_frame(t))
    assert tr.calls == ["push"] * 3 and _ids(node) == [1, 1, 1]
    tr.pending = 1  # one frame buffered: finalised (flushed) before the reset
    node._process(_frame(10.3, h=8))  # size change
    node._process(_frame(5.0, h=8))  # back in time
    node._process(_frame(5.5, h=8))  # 0.5 s gap < gap_reset_sec: same stream
    node._process(_frame(7.0, h=8))  # 1.5 s gap: new stream
    assert tr.calls == ["push"] * 3 + ["flush", "reset", "push"] + ["reset", "push"] + [
        "push"] + ["reset", "push"]
    assert _ids(node) == [1, 1, 1, 2, 3, 3, 4]
    assert node._stats.resets == 3
    msg = node._pub_instances.msgs[-1]
    assert msg.header.stamp.sec == 7 and (msg.height, msg.width) == (8, 6)
    assert node._pub_track_ids.msgs[-1].encoding == "mono16"
    assert node._pub_overlay.msgs[-1].encoding == "bgr8"


def test_live_parameters_while_active(node):
    from rclpy.parameter import Parameter

    res = node.set_parameters([Parameter("mask_threshold", value=0.25)])
    assert res[0].successful
    res = node.set_parameters([Parameter("min_mask_area", value=-1)])  # back to checkpoint's
    assert res[0].successful
    res = node.set_parameters([Parameter("checkpoint", value="other.pt")])
    assert not res[0].successful and "deactivate" in res[0].reason
    res = node.set_parameters([Parameter("classes", value=["truck"])])
    assert not res[0].successful and "unknown ['truck']" in res[0].reason
    res = node.set_parameters([Parameter("publish_overlay", value=False)])
    assert res[0].successful and node._p.publish_overlay is False
    node._apply_pending_thresholds()
    assert node._tracker.thresholds == {"mask_threshold": 0.25, "min_mask_area": -1}
