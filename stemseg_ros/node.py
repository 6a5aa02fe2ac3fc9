"""The STEm-Seg perception node: camera images in, tracked instance masks out.

Lifecycle node ``stemseg_perception``: configure reads the parameters and loads the checkpoint
(a failure names the problem; the node stays up), activate starts the worker and subscribes,
deactivate/cleanup stop them and free the model. The image callback (intake.py) converts, skips
to ``max_input_rate`` and enqueues; the worker (worker.py) runs the core's StreamSession and this
node publishes. Data flow: docs/architecture.md; topics and parameters: docs/node.md.
Every callback is `guarded` (guard.py): what a peer's request makes it raise is refused, never
the end of the process.
"""
from __future__ import annotations

import os
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from stemseg_ros import dds, names, param_checks, param_io, params
from stemseg_ros import qos as Q
from stemseg_ros.camera_size import expected_camera_size
from stemseg_ros.depth_input import Sensors3D
from stemseg_ros.diagnostics import (
    ConfigureErrorReporter,
    InputMonitor,
    StatusBuilder,
    device_model,
)
from stemseg_ros.guard import cut, guarded, log_limited
from stemseg_ros.intake import Intake
from stemseg_ros.model_holder import ModelHolder, share_dir
from stemseg_ros.outputs import Outputs
from stemseg_ros.worker import FlushRequest, FrameQueue, Stats, Worker

#: Seconds ~/flush and deactivate wait for the worker; on SIGINT/SIGTERM much less.
FLUSH_TIMEOUT_SEC = STOP_TIMEOUT_SEC = 120.0
SIGNAL_STOP_SEC = 1.5
_FAILURE = lambda _: TransitionCallbackReturn.FAILURE  # noqa: E731 - refusals of `guarded`
_ERROR = lambda _: TransitionCallbackReturn.ERROR  # noqa: E731


class NextTurn:
    """Awaited in a service coroutine: gives the executor back for one turn (rclpy resumes a
    pending task at each of its turns, at the latest every spin timeout)."""

    def __await__(self) -> Any:
        yield


class PerceptionNode(LifecycleNode):
    """Lifecycle node running a stemseg StreamingTracker on one camera stream."""

    def __init__(self, node_name: str = names.NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._declare_errors = param_io.declare(self)
        self._remote_model_change = bool(self.get_parameter("allow_remote_model_change").value)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._p: params.PerceptionParams | None = None
        self._model = ModelHolder(self.get_logger())
        self._stats = Stats()
        self._intake = Intake(self._stats, self.get_logger())
        self._sensors = Sensors3D(self)  # depth / LiDAR -> 3-D per instance (issue 36)
        self._monitor = InputMonitor(os.environ.get(dds.PROFILE_VARIABLE)
                                     or dds.profile_path(share_dir()) or dds.PROFILE)
        self._status = StatusBuilder(names.status_name(self.get_fully_qualified_name()))
        self._worker: Worker | None = None
        self._out: Outputs | None = None
        self._sub = self._diag_timer = self._flush_srv = self._pub_diag = None
        self._sub_reliability = ""
        self._configure_error = ConfigureErrorReporter(self, names.DIAGNOSTICS)
        self._cb_flush = MutuallyExclusiveCallbackGroup()

    # -- lifecycle ---------------------------------------------------------------------------
    @guarded("configure", _FAILURE, undo="_undo_configure")
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            if self._declare_errors:
                raise params.ParamError("; ".join(self._declare_errors.values()))
            self._p = p = param_io.read(self)
            self._model.load(p)
        except Exception as e:  # noqa: BLE001 - any problem fails configure, the node stays up
            log.error(f"configure failed: {e}")
            self._model.free()
            self._report_configure_error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        self._report_configure_error(None)
        self._out = Outputs(self, self._stats, p.qos_depth, self._sensors)
        self._pub_diag = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._flush_srv = self.create_service(Trigger, names.FLUSH, self._on_flush,
                                              callback_group=self._cb_flush)
        self._diag_timer = self.create_timer(p.diagnostics_period_sec, self._on_timer)
        log.info(f"configured: {self._model.summary()}; input '{self._input_topic()}' "
                 f"({p.input_transport}, qos {p.qos_reliability})")
        return TransitionCallbackReturn.SUCCESS

    def _undo_configure(self) -> None:
        self._model.free()
        self._destroy_entities()

    @guarded("activate", _FAILURE, undo="_undo_activate")
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:  # parameters may have changed while inactive
            self._p = p = param_io.read(self)
            self._sensors.start(p, self.resolve_topic_name(names.IMAGE), Q.qos_for(
                "best_effort" if p.qos_reliability == "auto" else p.qos_reliability, p.qos_depth))
            known = expected_camera_size(self, self.resolve_topic_name(names.IMAGE),
                                         p.expected_input_size)
            session = self._model.session(p, known)
        except Exception as e:  # noqa: BLE001
            self._sensors.stop()
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.FAILURE
        tr = session.tracker
        queue = FrameQueue(p.max_queue_clips * (tr.clip_length - tr.clip_overlap))
        self._out.start(p, tr.class_names, tr.seediness_threshold)
        self._worker = Worker(session, queue, self._stats, self._out.publish, self.get_logger(),
                              p.idle_flush_sec)
        self._intake.start(p, queue, tr.cfg)
        ret = super().on_activate(state)
        self._out.activated()  # ~/label_info, now that its publisher is active
        self._worker.start()
        self._subscribe()
        self.get_logger().info(f"active: {self._model.summary()}, queue {queue.capacity} frames")
        return ret

    def _undo_activate(self) -> None:
        self._stop(STOP_TIMEOUT_SEC)
        super().on_deactivate(None)

    @guarded("deactivate", _ERROR)
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop(STOP_TIMEOUT_SEC)
        return super().on_deactivate(state)

    @guarded("cleanup", _ERROR)
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop(STOP_TIMEOUT_SEC)
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    on_shutdown = on_error = on_cleanup

    def _stop(self, timeout: float, release: bool = True) -> None:
        """Stop input and worker (publishing what the tracker holds), free the model (and give
        the memory back to the system with `release`)."""
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        discarded = self._intake.stop()
        if self._worker is not None:
            if not self._worker.stop(timeout):
                self.get_logger().warning(f"the worker is still in a clip after {timeout:.1f} "
                                          f"s; its results will not be published")
            self._worker = None
        self._sensors.stop()  # after the worker: its last frames still pair with their depth
        if self._out is not None:
            self._out.stop()
        if discarded:
            self.get_logger().warning(f"stopping: {discarded} queued frame(s) dropped")
        self._model.free(release)

    def _destroy_entities(self) -> None:
        if self._out is not None:
            self._out.destroy()
            self._out = None
        for ent, destroy in ((self._pub_diag, self.destroy_publisher),
                             (self._flush_srv, self.destroy_service),
                             (self._diag_timer, self.destroy_timer)):
            if ent is not None:
                destroy(ent)
        self._pub_diag = self._flush_srv = self._diag_timer = self._p = None

    def shutdown_now(self) -> None:
        """On SIGINT/SIGTERM: stop within ~SIGNAL_STOP_SEC, publishing while the context lives."""
        self._stop(SIGNAL_STOP_SEC, release=False)  # the process ends: no need to trim
        if self._out is not None:
            self._out.closing = True

    # -- input -------------------------------------------------------------------------------
    def _input_topic(self) -> str:
        image = self.resolve_topic_name(names.IMAGE)
        return (names.compressed_topic(image) if self._p.input_transport == "compressed"
                else image)

    def _subscribe(self) -> None:
        p, topic = self._p, self._input_topic()
        reliability = p.qos_reliability
        if reliability == "auto":
            reliability = self._auto_reliability(topic) or "best_effort"
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda i: self.get_logger().warning(Q.input_incompatible_message(
                i, topic, self._sub_reliability, p.qos_depth)),
            message_lost=lambda i: setattr(self._monitor, "lost",
                                           self._monitor.lost + i.total_count_change))
        msg_type = CompressedImage if p.input_transport == "compressed" else Image
        self._sub = self.create_subscription(msg_type, topic, self._intake.on_image,
                                             Q.qos_for(reliability, p.qos_depth),
                                             event_callbacks=events)
        self._sub_reliability = reliability
        self.get_logger().info(f"subscribed to {self._sub.topic_name} ({msg_type.__name__}, "
                               f"{reliability}, depth {p.qos_depth})")

    def _auto_reliability(self, topic: str) -> str | None:
        """What qos_reliability auto picks for the publishers now on `topic` (None: none yet)."""
        infos = self.get_publishers_info_by_topic(topic)
        return Q.matching_reliability([i.qos_profile.reliability for i in infos]) if infos \
            else None

    # -- services, parameters, diagnostics -----------------------------------------------------
    @guarded("flush", lambda r: Trigger.Response(success=False, message=r))
    async def _on_flush(self, request: Trigger.Request, response: Trigger.Response
                        ) -> Trigger.Response:
        """Finalise the frames queued so far. A coroutine in its own callback group: while it
        waits for the worker, the executor's one thread goes on taking images, timers and the
        other services; the worker wakes the executor when the request is done."""
        if self._worker is None:  # (response.success is False by default)
            response.message = "not active: nothing to flush (activate the node first)"
            return response
        executor = self.executor
        req = FlushRequest(notify=executor.wake if executor is not None else None)
        self._worker.queue.put_control(req)
        deadline = time.monotonic() + FLUSH_TIMEOUT_SEC
        while not req.done.is_set() and time.monotonic() < deadline:
            await NextTurn()
        response.success = req.done.is_set()
        response.message = (f"finalised {req.published} frame(s)" if response.success
                            else f"flush did not finish within {FLUSH_TIMEOUT_SEC} s")
        return response

    @guarded("parameter set", lambda r: SetParametersResult(successful=False, reason=r))
    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        active = self._worker is not None
        try:
            values = param_checks.check_changes(changes, active=active,
                                          remote_model_change=self._remote_model_change)
            for name in (set(values) & set(params.THRESHOLDS)) if active else ():
                self._model.check_threshold(name, values[name])
        except ValueError as e:
            log_limited(self.get_logger(), "warning", "parameter set refused",
                        f"parameter set refused: {cut(str(e))}")
            return SetParametersResult(successful=False, reason=cut(str(e)))
        for name in values:
            self._declare_errors.pop(name, None)
        if active and values:
            self._p = self._p.replace(**values)
            self._worker.idle_flush_sec = self._p.idle_flush_sec
            self._worker.session.gap_reset_sec = self._p.gap_reset_sec
            self._intake.params = self._out.params = self._p
            if thr := self._model.thresholds(values):
                self._worker.set_thresholds(thr)
                self._out.thresholds_changed(thr)  # ~/label_info's threshold
        return SetParametersResult(successful=True)

    def _report_configure_error(self, message: str | None) -> None:
        self._configure_error.report(self._status.name, message, device_model(self._model.device))

    @guarded("diagnostics", lambda _: None)
    def _on_timer(self) -> None:
        p, active = self._p, self._worker is not None
        if p is None or self._pub_diag is None:
            return
        topic = self._input_topic()
        if active and p.qos_reliability == "auto" and self._sub is not None:
            want = self._auto_reliability(topic)
            if want is not None and want != self._sub_reliability:
                self.get_logger().info(f"qos_reliability auto: publishers now offer {want}, "
                                       f"re-subscribing")
                self.destroy_subscription(self._sub)
                self._subscribe()
        # publishers this node's reader has matched: images sent before that are lost
        n_pubs = self._sub.get_publisher_count() if self._sub is not None else 0
        warning = self._monitor.check(topic, n_pubs, self._stats.frames_in) if active else None
        if warning:
            self.get_logger().warning(warning, throttle_duration_sec=30.0)
        values = {"state": "active" if active else "inactive", **self._model.info(),
                  "input_topic": topic, "input_publishers": str(n_pubs),
                  **self._intake.info(), **(self._worker.info() if active else {}),
                  **self._sensors.info()}
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self._status.build(self._stats.snapshot(), values,
                                         device_model(self._model.device), active, warning)]
        self._pub_diag.publish(arr)


def main(args: list[str] | None = None) -> int:
    """`stemseg-perception [--ros-args ...]` (stemseg_ros/main.py)."""
    from stemseg_ros.main import run

    return run(PerceptionNode, args)
