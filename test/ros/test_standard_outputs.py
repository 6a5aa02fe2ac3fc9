"""The standard outputs' conversions (stemseg_ros/standard_outputs.py): core instances and their
3-D states -> vision_msgs Detection2DArray / Detection3DArray / LabelInfo and RViz markers."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vision_msgs.msg", reason="no vision_msgs: run `make setup`")

from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from stemseg_core.geometry import Object3D, Track3D  # noqa: E402
from stemseg_core.inference.types import TrackedInstance  # noqa: E402
from stemseg_ros import standard_outputs as so  # noqa: E402


def _inst(tid: int, box: tuple[int, int, int, int], cls: str = "car", score: float = 0.9):
    x, y, w, h = box
    m = np.zeros((40, 60), bool)
    m[y:y + h, x:x + w] = True
    return TrackedInstance(tid, 1 if cls == "car" else 2, cls, score, m)


def _track(tid: int, pos=None, size=(1.8, 1.5, 4.2)):
    if pos is None:
        nan3 = np.full(3, np.nan)
        return Track3D(tid, Object3D(False, nan3, nan3, 0), False, np.zeros(3))
    return Track3D(tid, Object3D(True, np.array(pos, float), np.array(size, float), 50), False,
                   np.zeros(3))


HEADER = Header(frame_id="cam_optical")
HEADER.stamp.sec = 7


def test_detections_carry_box_centre_size_track_id_class_and_score():
    insts = [_inst(12, (10, 5, 20, 8)), _inst(3, (0, 0, 1, 1), "pedestrian", 0.25)]
    msg = so.detections_msg(insts, HEADER)
    assert msg.header.stamp.sec == 7 and msg.header.frame_id == "cam_optical"
    d0, d1 = msg.detections
    assert d0.id == "12" and d1.id == "3"
    assert (d0.bbox.center.position.x, d0.bbox.center.position.y) == (20.0, 9.0)
    assert (d0.bbox.size_x, d0.bbox.size_y) == (20.0, 8.0)
    assert (d1.bbox.center.position.x, d1.bbox.size_x) == (0.5, 1.0)
    assert d1.results[0].hypothesis.class_id == "pedestrian"
    assert d1.results[0].hypothesis.score == pytest.approx(0.25)
    assert d0.header.stamp.sec == 7


def test_detections_3d_only_for_instances_with_a_position():
    insts = [_inst(1, (0, 0, 5, 5)), _inst(2, (10, 10, 5, 5), "pedestrian")]
    msg = so.detections_3d_msg(insts, [_track(1), _track(2, (1.0, -0.5, 12.0), (0.6, 1.7, 0.5))],
                               HEADER)
    (d,) = msg.detections
    assert d.id == "2" and d.results[0].hypothesis.class_id == "pedestrian"
    c = d.bbox.center
    assert (c.position.x, c.position.y, c.position.z, c.orientation.w) == (1.0, -0.5, 12.0, 1.0)
    assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == pytest.approx((0.6, 1.7, 0.5))
    assert d.results[0].pose.pose.position.z == 12.0


def test_markers_clear_the_old_ones_then_a_box_and_a_label_per_3d_track():
    insts = [_inst(5, (0, 0, 5, 5)), _inst(9, (10, 10, 5, 5))]
    msg = so.markers_msg(insts, [_track(5, (2.0, 1.0, 20.0), (1.8, 0.0, 4.0)), _track(9)], HEADER)
    first, box, label = msg.markers
    assert first.action == Marker.DELETEALL
    assert box.type == Marker.CUBE and box.id == 5 and box.ns == so.MARKER_NS
    assert (box.pose.position.x, box.pose.position.z) == (2.0, 20.0)
    assert box.scale.y == so.MIN_MARKER_EDGE and box.scale.z == 4.0
    assert box.lifetime.sec + box.lifetime.nanosec * 1e-9 == so.MARKER_LIFETIME_SEC
    assert label.type == Marker.TEXT_VIEW_FACING and label.text == "car 5" and label.id == 5
    assert label.ns != box.ns  # same id, other namespace: both shown
    assert label.pose.position.y < box.pose.position.y  # above the box (y points down)
    assert all(m.header.frame_id == "cam_optical" for m in msg.markers)


def test_label_info_maps_class_ids_to_names_without_background():
    msg = so.label_info_msg(["background", "car", "pedestrian"], 0.8)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(1, "car"),
                                                                    (2, "pedestrian")]
    assert msg.threshold == pytest.approx(0.8)


class _FakePub:
    def __init__(self, subscribers: int) -> None:
        self.subscribers, self.sent = subscribers, []

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg) -> None:
        self.sent.append(msg)


class _FakeNode:
    def __init__(self, subscribers: dict[str, int]) -> None:
        self.subscribers, self.pubs = subscribers, {}

    def create_lifecycle_publisher(self, msg_type, topic, qos, event_callbacks=None):
        self.pubs[topic] = _FakePub(self.subscribers.get(topic, 0))
        self.pubs[topic].qos = qos
        return self.pubs[topic]


@pytest.mark.parametrize("with_3d", [False, True])
def test_a_message_is_built_only_for_topics_with_subscribers(with_3d):
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from stemseg_ros import names

    node = _FakeNode({names.DETECTIONS_3D: 1, names.MARKERS: 2})
    out = so.StandardOutputs(node, QoSProfile(depth=5), with_3d)
    assert (names.DETECTIONS_3D in node.pubs) == with_3d == (names.MARKERS in node.pubs)
    assert node.pubs[names.LABEL_INFO].qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
    insts = [_inst(4, (0, 0, 5, 5))]
    out.publish(insts, [_track(4, (0.0, 0.0, 9.0))] if with_3d else None, HEADER)
    assert node.pubs[names.DETECTIONS].sent == []  # nobody listens
    if with_3d:
        assert len(node.pubs[names.DETECTIONS_3D].sent) == len(node.pubs[names.MARKERS].sent) == 1
