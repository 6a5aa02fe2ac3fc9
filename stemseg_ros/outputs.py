"""The node's result topics, fed by the worker thread: ``~/instances`` for every answered frame,
``~/track_ids`` and ``~/overlay`` while switched on and subscribed, the vision_msgs / marker
outputs of standard_outputs.py while subscribed; latencies go to Stats. One Outputs per camera
(``~/<camera>/instances``, ... with the parameter ``cameras``)."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cv2
from rclpy.event_handler import PublisherEventCallbacks
from sensor_msgs.msg import Image

from stemseg_ros import conversions, names
from stemseg_ros import qos as Q
from stemseg_ros.guard import log_limited, reason
from stemseg_ros.msg import TrackedInstanceArray
from stemseg_ros.overlay import OverlayDrawer
from stemseg_ros.worker_stats import Stats

if TYPE_CHECKING:
    from stemseg_ros.params import PerceptionParams

#: The live threshold that ~/label_info's ``threshold`` carries (the tracker's seed cut).
LABEL_THRESHOLD = "seediness_threshold"


class Outputs:
    """Lifecycle publishers of one configured node; `publish` is the worker's callable."""

    def __init__(self, node: Any, stats: Stats, qos_depth: int, sensors: Any = None,
                 camera: str = "") -> None:
        self.node, self.stats, self.camera = node, stats, camera
        self.sensors = sensors  # depth_input.Sensors3D: 3-D fields of ~/instances
        log = node.get_logger()
        events = PublisherEventCallbacks(
            incompatible_qos=lambda i: log.warning(Q.output_incompatible_message(i)))
        qos = Q.qos_for("reliable", qos_depth)
        self.pubs = {key: node.create_lifecycle_publisher(
            TrackedInstanceArray if key == "instances" else Image,
            names.camera_topic(topic, camera), qos,
            event_callbacks=events) for key, topic in (
            ("instances", names.INSTANCES), ("overlay", names.OVERLAY),
            ("track_ids", names.TRACK_IDS))}
        self.params: PerceptionParams | None = None  # the node's (live ones may change)
        self.closing = False  # the process ends: publish nothing more
        self._overlay: OverlayDrawer | None = None
        self._events, self._qos = events, qos
        self.standard: Any = None  # standard_outputs.StandardOutputs while active
        self._now_ns: Callable[[], int] = lambda: node.get_clock().now().nanoseconds

    def start(self, params: PerceptionParams, class_names: list[str] | None = None,
              threshold: float = 0.0) -> None:
        """Before activation: the overlay thread and the standard outputs (3-D ones with
        use_depth / use_lidar); `class_names` and `threshold` go to ~/label_info."""
        self.params = params
        self._overlay = OverlayDrawer(self.publish_overlay, self.node.get_logger())
        try:
            from stemseg_ros.standard_outputs import StandardOutputs
        except ImportError as e:  # a ROS install without vision_msgs / visualization_msgs
            self.node.get_logger().warning(f"standard outputs (~/detections, ~/label_info, "
                                           f"~/markers) off: {e}")
            return
        self.standard = StandardOutputs(self.node, self._qos,
                                        bool(params.use_depth or params.use_lidar), self._events,
                                        self.camera)
        self.standard.set_labels(class_names or [], threshold)

    def activated(self) -> None:
        """After activation: ~/label_info (transient local: late subscribers get it too)."""
        if self.standard is not None:
            self.standard.publish_labels()

    def thresholds_changed(self, values: dict[str, Any]) -> None:
        """Live thresholds set (resolved values): ~/label_info again when its threshold moved."""
        v = values.get(LABEL_THRESHOLD)
        if self.standard is not None and isinstance(v, (int, float)):
            self.standard.set_threshold(v)

    def stop(self) -> None:
        if self._overlay is not None:
            self._overlay.close()
            self._overlay = None
        if self.standard is not None:
            self.standard.destroy()
            self.standard = None

    def destroy(self) -> None:
        self.stop()
        for pub in self.pubs.values():
            self.node.destroy_lifecycle_publisher(pub)
        self.pubs = {}

    def publish(self, results: list[Any]) -> None:
        """FrameResults whose `stamp` is the worker's Frame -> messages (worker thread)."""
        p = self.params
        for res in results:
            t0 = time.perf_counter()
            frame = res.stamp
            if frame.roi is not None:
                res = dataclasses.replace(res, image_size=frame.image.shape[:2], instances=(
                    conversions.place_in_image(res.instances, frame.roi, frame.image.shape[:2])))
            if self.closing:
                return
            tracks3d = self._lift(res, frame.header)
            self.pubs["instances"].publish(conversions.frame_result_to_msg(
                res, frame.header, tracks3d=tracks3d))
            self._publish_standard(res.instances, tracks3d, frame.header)
            h, w = res.image_size
            if p.publish_track_ids and self.pubs["track_ids"].get_subscription_count() > 0:
                self.pubs["track_ids"].publish(
                    conversions.track_ids_image(res.instances, h, w, frame.header))
            overlay = self._overlay
            if (p.publish_overlay and overlay is not None
                    and self.pubs["overlay"].get_subscription_count() > 0):
                rgb = frame.image
                if rgb.shape[:2] != (h, w):  # decoded at reduced scale: draw at full size
                    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
                overlay.submit(rgb, res.instances, frame.header)
            self.stats.add(frames_out=1)
            self.stats.record_latency(self._now_ns() - frame.stamp_ns, frame.received,
                                      time.perf_counter() - t0)

    def _lift(self, res: Any, header: Any) -> list[Any] | None:
        """The frame's Track3D per instance; None (no 3-D fields) when off or failing."""
        if self.sensors is None:
            return None
        try:
            return self.sensors.lift(res.instances, header, res.image_size)
        except Exception as e:  # noqa: BLE001 - the frame is still answered, without 3-D
            log_limited(self.node.get_logger(), "error", "3-D lift",
                        f"3-D lifting failed, frame answered without it: {reason(e)}")
            return None

    def _publish_standard(self, instances: list[Any], tracks3d: list[Any] | None,
                          header: Any) -> None:
        standard = self.standard
        if standard is None:
            return
        try:
            standard.publish(instances, tracks3d, header)
        except Exception as e:  # noqa: BLE001 - ~/instances went out; count and go on
            log_limited(self.node.get_logger(), "error", "standard outputs",
                        f"standard outputs of a frame failed: {reason(e)}")

    def publish_overlay(self, bgr: Any, header: Any) -> None:
        pub = self.pubs.get("overlay")
        if pub is not None and not self.closing:
            pub.publish(conversions.array_to_image(bgr, "bgr8", header))
