"""One camera of the perception node: its input subscription, intake (conversion and frame
skipping), outputs, 3-D sensors, counters and /diagnostics status.

A single-camera node has one CameraStream named "" (topics ``image``, ``~/instances``, status
``<node>: pipeline``, exactly as before there were several). With the parameter ``cameras``
(e.g. [front, rear]) the node has one per name: ``front/image`` in (remappable, ``/compressed``
with that transport), ``~/front/instances`` and the other outputs out, the status
``<node>/front: pipeline``. Every stream gets 1/N of ``max_input_rate`` (Intake's ``share``), so
the cameras share the one network's time evenly; the worker serves their queues in turn.
"""
from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CompressedImage, Image

from stemseg_ros import names
from stemseg_ros import qos as Q
from stemseg_ros.camera_size import expected_camera_size
from stemseg_ros.depth_input import Sensors3D
from stemseg_ros.diagnostics import InputMonitor, StatusBuilder
from stemseg_ros.intake import Intake
from stemseg_ros.outputs import Outputs
from stemseg_ros.worker_stats import Stats


def camera_sessions(model: Any, p: Any, known: list[tuple[tuple[int, int], str] | None]
                    ) -> list[Any]:
    """One warmed-up StreamSession per camera from the node's ModelHolder (`known`: each
    camera's size and where it came from, or None): the single session, or with the parameter
    ``cameras`` those of a TrackerGroup (one network; engines built once per distinct size)."""
    first = model.session(p, known[0] if known else None)
    if not p.cameras:
        return [first]
    from stemseg_core.inference.tracker_group import TrackerGroup

    group = TrackerGroup(first.tracker, p.cameras, p.gap_reset_sec)
    sessions = [group.sessions[name] for name in group.names]
    for session, camera in zip(sessions, known):
        if camera:  # nothing is built where another camera's size matched
            session.prepare((p.input_roi[3], p.input_roi[2]) if p.input_roi else camera[0])
    return sessions


class CameraStream:
    """The per-camera plumbing of one configured node (made by configure, dropped by cleanup)."""

    def __init__(self, node: Any, camera: str, n_cameras: int, profile_hint: str) -> None:
        self.node, self.camera = node, camera
        self.stats = Stats()
        self.intake = Intake(self.stats, node.get_logger(), share=1.0 / max(1, n_cameras))
        self.sensors = Sensors3D(node)  # depth (beside its image topic) / LiDAR -> 3-D (issue 36)
        self.monitor = InputMonitor(profile_hint)
        self.status = StatusBuilder(names.status_name(node.get_fully_qualified_name(), camera))
        self.out: Outputs | None = None
        self.sub: Any = None
        self.reliability = ""
        self._p: Any = None

    def configure(self, p: Any) -> None:
        self._p = p
        self.out = Outputs(self.node, self.stats, p.qos_depth, self.sensors, self.camera)

    # -- topics --------------------------------------------------------------------------------
    def image_topic(self) -> str:
        """The resolved image topic (``image`` or ``<camera>/image``, remaps applied)."""
        return self.node.resolve_topic_name(names.camera_topic(names.IMAGE, self.camera))

    def input_topic(self) -> str:
        image = self.image_topic()
        return names.compressed_topic(image) if self._p.input_transport == "compressed" \
            else image

    def start_sensors(self, p: Any) -> None:
        self._p = p
        self.sensors.start(p, self.image_topic(), Q.qos_for(
            "best_effort" if p.qos_reliability == "auto" else p.qos_reliability, p.qos_depth))

    def expected_size(self, p: Any) -> tuple[tuple[int, int], str] | None:
        return expected_camera_size(self.node, self.image_topic(), p.expected_input_size)

    # -- subscription --------------------------------------------------------------------------
    def subscribe(self, p: Any) -> None:
        self._p = p
        node, topic = self.node, self.input_topic()
        reliability = p.qos_reliability
        if reliability == "auto":
            reliability = self.auto_reliability(topic) or "best_effort"
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda i: node.get_logger().warning(Q.input_incompatible_message(
                i, topic, self.reliability, p.qos_depth)),
            message_lost=lambda i: setattr(self.monitor, "lost",
                                           self.monitor.lost + i.total_count_change))
        msg_type = CompressedImage if p.input_transport == "compressed" else Image
        self.sub = node.create_subscription(msg_type, topic, self.intake.on_image,
                                            Q.qos_for(reliability, p.qos_depth),
                                            event_callbacks=events)
        self.reliability = reliability
        node.get_logger().info(f"subscribed to {self.sub.topic_name} ({msg_type.__name__}, "
                               f"{reliability}, depth {p.qos_depth})")

    def unsubscribe(self) -> None:
        if self.sub is not None:
            self.node.destroy_subscription(self.sub)
            self.sub = None

    def auto_reliability(self, topic: str) -> str | None:
        """What qos_reliability auto picks for the publishers now on `topic` (None: none yet)."""
        infos = self.node.get_publishers_info_by_topic(topic)
        return Q.matching_reliability([i.qos_profile.reliability for i in infos]) if infos \
            else None

    def follow_publishers(self) -> None:
        """qos_reliability auto: re-subscribe when the publishers now offer another one."""
        if self._p is None or self._p.qos_reliability != "auto" or self.sub is None:
            return
        want = self.auto_reliability(self.input_topic())
        if want is not None and want != self.reliability:
            self.node.get_logger().info(f"qos_reliability auto: publishers on "
                                        f"{self.input_topic()} now offer {want}, re-subscribing")
            self.unsubscribe()
            self.subscribe(self._p)

    # -- diagnostics and teardown --------------------------------------------------------------
    def diagnostic(self, shared: dict[str, str], worker: Any, device: str) -> DiagnosticStatus:
        """This camera's status: `shared` (state, model) and its own input, queue, counters."""
        active = worker is not None
        topic = self.input_topic()
        n_pubs = self.sub.get_publisher_count() if self.sub is not None else 0
        warning = self.monitor.check(topic, n_pubs, self.stats.frames_in) if active else None
        if warning:
            self.node.get_logger().warning(warning, throttle_duration_sec=30.0)
        values = {**shared, **({"camera": self.camera} if self.camera else {}),
                  "input_topic": topic, "input_publishers": str(n_pubs), **self.intake.info(),
                  **(worker.info(self.camera) if active else {}), **self.sensors.info()}
        return self.status.build(self.stats.snapshot(), values, device, active, warning)

    def stop(self) -> int:
        """Unsubscribe and discard the waiting frames (returned); the worker is stopped after."""
        self.unsubscribe()
        return self.intake.stop()

    def stop_outputs(self) -> None:
        self.sensors.stop()  # after the worker: its last frames still pair with their depth
        if self.out is not None:
            self.out.stop()

    def destroy(self) -> None:
        if self.out is not None:
            self.out.destroy()
            self.out = None
