"""The node's standard outputs beside ``~/instances``, for tools that read vision_msgs and RViz:

- ``~/detections`` (vision_msgs/Detection2DArray): per instance the mask's box (centre and size,
  pixels), ``id`` = the track ID as a string, one result with ``class_id`` = the class name and
  the score;
- ``~/detections_3d`` (vision_msgs/Detection3DArray, only with use_depth / use_lidar): per
  instance with a position, a box centred on it with the instance's 3-D size (camera optical
  frame, metres), same ``id`` and result;
- ``~/label_info`` (vision_msgs/LabelInfo, transient local like camera_info): class ID -> name
  and the seediness threshold, once per activation and again when that threshold is set live;
  late subscribers receive the latest;
- ``~/markers`` (visualization_msgs/MarkerArray, only with 3-D): a DELETEALL, then per 3-D
  track a CUBE and a TEXT_VIEW_FACING label ("car 12"); markers also expire after
  MARKER_LIFETIME_SEC, so tracks that ended vanish even when no frame follows.

A message is built only while its topic has subscribers. :class:`StandardOutputs` owns the
publishers; the ``*_msg`` functions are the conversions (core TrackedInstance / Track3D in).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)
from visualization_msgs.msg import Marker, MarkerArray

from stemseg_core.visualize import track_colour
from stemseg_ros import names

#: Seconds a marker stays in RViz without a newer MarkerArray.
MARKER_LIFETIME_SEC = 1.0
#: Smallest edge of a marker cube (metres): a flat or one-point instance stays visible.
MIN_MARKER_EDGE = 0.05
#: Height of the ID label (metres) and its gap above the box.
LABEL_HEIGHT = 0.5
MARKER_NS = "stemseg"


def _hypothesis(inst: Any) -> ObjectHypothesisWithPose:
    h = ObjectHypothesisWithPose()
    h.hypothesis.class_id = str(inst.class_name)
    h.hypothesis.score = float(inst.score)
    return h


def detections_msg(instances: Sequence[Any], header: Header) -> Detection2DArray:
    """Core TrackedInstances -> Detection2DArray (box of each mask, track ID, class, score)."""
    out = Detection2DArray(header=header)
    for inst in instances:
        x, y, w, h = inst.bbox()
        d = Detection2D(header=header, id=str(int(inst.track_id)), results=[_hypothesis(inst)])
        d.bbox = BoundingBox2D(size_x=float(w), size_y=float(h))
        d.bbox.center.position.x, d.bbox.center.position.y = x + w / 2.0, y + h / 2.0
        out.detections.append(d)
    return out


def _pose(position: Sequence[float]) -> Pose:
    return Pose(position=Point(**dict(zip("xyz", map(float, position)))),
                orientation=Quaternion(w=1.0))


def detections_3d_msg(instances: Sequence[Any], tracks3d: Sequence[Any],
                      header: Header) -> Detection3DArray:
    """Instances with a position -> Detection3DArray (box at the position, 3-D size)."""
    out = Detection3DArray(header=header)
    for inst, t in zip(instances, tracks3d):
        if not t.object.has_position:
            continue
        pose = _pose(t.object.position)
        hyp = _hypothesis(inst)
        hyp.pose.pose = pose
        d = Detection3D(header=header, id=str(int(inst.track_id)), results=[hyp])
        d.bbox = BoundingBox3D(center=pose,
                               size=Vector3(**dict(zip("xyz", map(float, t.object.size)))))
        out.detections.append(d)
    return out


def markers_msg(instances: Sequence[Any], tracks3d: Sequence[Any],
                header: Header) -> MarkerArray:
    """DELETEALL, then a CUBE and a TEXT_VIEW_FACING label per instance with a position (marker
    id = track ID; the label's is the same in the namespace ``<MARKER_NS>/labels``)."""
    life = Duration(sec=int(MARKER_LIFETIME_SEC),
                    nanosec=int(MARKER_LIFETIME_SEC % 1 * 1e9))
    out = MarkerArray(markers=[Marker(header=header, ns=MARKER_NS, action=Marker.DELETEALL)])
    for inst, t in zip(instances, tracks3d):
        if not t.object.has_position:
            continue
        b, g, r = (c / 255.0 for c in track_colour(int(inst.track_id)))  # as the overlay
        mid = int(inst.track_id) & 0x7FFFFFFF  # Marker.id is int32
        size = [max(float(s), MIN_MARKER_EDGE) for s in t.object.size]
        box = Marker(header=header, ns=MARKER_NS, id=mid, type=Marker.CUBE,
                     action=Marker.ADD, pose=_pose(t.object.position), lifetime=life,
                     scale=Vector3(x=size[0], y=size[1], z=size[2]),
                     color=ColorRGBA(r=r, g=g, b=b, a=0.5))
        x, y, z = (float(v) for v in t.object.position)
        above = y - size[1] / 2.0 - LABEL_HEIGHT  # optical frame: y points down
        label = Marker(header=header, ns=f"{MARKER_NS}/labels", id=mid,
                       type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                       pose=_pose((x, above, z)), lifetime=life,
                       scale=Vector3(z=LABEL_HEIGHT), color=ColorRGBA(r=r, g=g, b=b, a=1.0),
                       text=f"{inst.class_name} {int(inst.track_id)}")
        out.markers += [box, label]
    return out


def label_info_msg(class_names: Sequence[str], threshold: float,
                   header: Header | None = None) -> LabelInfo:
    """The model's classes (ID >= 1; 0 is background) -> LabelInfo."""
    return LabelInfo(header=header or Header(), threshold=float(threshold),
                     class_map=[VisionClass(class_id=i, class_name=str(n))
                                for i, n in enumerate(class_names) if i >= 1])


def latched_qos() -> QoSProfile:
    """Reliable, transient local, keep last 1 (as camera_info / map publishers offer)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class StandardOutputs:
    """Lifecycle publishers of the standard outputs of one active node (made by ``Outputs.start``,
    destroyed by its ``stop``); :meth:`publish` runs on the worker thread."""

    def __init__(self, node: Any, qos: QoSProfile, with_3d: bool, events: Any = None,
                 camera: str = "") -> None:
        self.node = node

        def make(msg_type: Any, topic: str, *args: Any, **kw: Any) -> Any:
            return node.create_lifecycle_publisher(msg_type, names.camera_topic(topic, camera),
                                                   *args, **kw)

        self.pubs = {"detections": make(Detection2DArray, names.DETECTIONS, qos,
                                        event_callbacks=events),
                     "label_info": make(LabelInfo, names.LABEL_INFO, latched_qos(),
                                        event_callbacks=events)}
        if with_3d:
            self.pubs["detections_3d"] = make(Detection3DArray, names.DETECTIONS_3D, qos,
                                              event_callbacks=events)
            self.pubs["markers"] = make(MarkerArray, names.MARKERS, qos, event_callbacks=events)
        self._label_info: LabelInfo | None = None

    def set_labels(self, class_names: Sequence[str], threshold: float) -> None:
        """The LabelInfo to publish once the publishers are active (:meth:`publish_labels`)."""
        self._label_info = label_info_msg(class_names, threshold)

    def set_threshold(self, threshold: float) -> None:
        """A live change of the threshold LabelInfo carries: republish (latched subscribers
        and late joiners then get the new value)."""
        if self._label_info is not None and float(threshold) != self._label_info.threshold:
            self._label_info.threshold = float(threshold)
            self.publish_labels()

    def publish_labels(self) -> None:
        if self._label_info is not None:
            self._label_info.header.stamp = self.node.get_clock().now().to_msg()
            self.pubs["label_info"].publish(self._label_info)

    def _wanted(self, key: str) -> bool:
        pub = self.pubs.get(key)
        return pub is not None and pub.get_subscription_count() > 0

    def publish(self, instances: Sequence[Any], tracks3d: Sequence[Any] | None,
                header: Header) -> None:
        if self._wanted("detections"):
            self.pubs["detections"].publish(detections_msg(instances, header))
        if tracks3d is None:
            return
        if self._wanted("detections_3d"):
            self.pubs["detections_3d"].publish(detections_3d_msg(instances, tracks3d, header))
        if self._wanted("markers"):
            self.pubs["markers"].publish(markers_msg(instances, tracks3d, header))

    def destroy(self) -> None:
        for pub in self.pubs.values():
            self.node.destroy_lifecycle_publisher(pub)
        self.pubs = {}
