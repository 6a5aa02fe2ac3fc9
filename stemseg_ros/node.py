"""The STEm-Seg perception node: camera images in, tracked instance masks out.

Lifecycle node ``stemseg_perception``: configure reads the parameters and loads the checkpoint
(a failure names the problem; the node stays up), activate starts the worker and subscribes,
deactivate/cleanup stop them and free the model. Each camera (one, or the parameter ``cameras``:
camera_stream.py) has its image callback (intake.py: converts, skips to its share of
``max_input_rate``, enqueues) and outputs; the one worker (worker.py) runs the core's
StreamSession of each camera in turn, all on one network (a TrackerGroup), and publishes.
Data flow: docs/architecture.md; topics and parameters: docs/node.md.
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
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import Trigger

from stemseg_ros import dds, names, param_checks, param_io, params
from stemseg_ros.camera_stream import CameraStream, camera_sessions
from stemseg_ros.diagnostics import ConfigureErrorReporter, device_model
from stemseg_ros.frame_queue import FlushRequest, FrameQueue
from stemseg_ros.guard import cut, guarded, log_limited
from stemseg_ros.model_holder import ModelHolder, share_dir
from stemseg_ros.worker import Worker

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
    """Lifecycle node running a stemseg StreamingTracker on one or several camera streams."""

    def __init__(self, node_name: str = names.NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._declare_errors = param_io.declare(self)
        self._remote_model_change = bool(self.get_parameter("allow_remote_model_change").value)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._p: params.PerceptionParams | None = None
        self._model = ModelHolder(self.get_logger())
        self._profile = dds.camera_profile(os.environ, share_dir())  # named in warnings
        self._streams = [CameraStream(self, "", 1, self._profile)]  # cameras: on configure
        self._worker: Worker | None = None
        self._diag_timer = self._flush_srv = self._pub_diag = None
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
        cams = p.cameras or ("",)
        self._streams = [CameraStream(self, c, len(cams), self._profile) for c in cams]
        for stream in self._streams:
            stream.configure(p)
        self._pub_diag = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._flush_srv = self.create_service(Trigger, names.FLUSH, self._on_flush,
                                              callback_group=self._cb_flush)
        self._diag_timer = self.create_timer(p.diagnostics_period_sec, self._on_timer)
        inputs = ", ".join(s.input_topic() for s in self._streams)
        log.info(f"configured: {self._model.summary()}; input {inputs} "
                 f"({p.input_transport}, qos {p.qos_reliability})")
        return TransitionCallbackReturn.SUCCESS

    def _undo_configure(self) -> None:
        self._model.free()
        self._destroy_entities()

    @guarded("activate", _FAILURE, undo="_undo_activate")
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:  # parameters may have changed while inactive
            self._p = p = param_io.read(self)
            if tuple(p.cameras or ("",)) != tuple(s.camera for s in self._streams):
                raise params.ParamError("parameter 'cameras' changed since configure: cleanup "
                                        "and configure again to change the cameras")
            for stream in self._streams:
                stream.start_sensors(p)
            sessions = camera_sessions(self._model, p,
                                       [s.expected_size(p) for s in self._streams])
        except Exception as e:  # noqa: BLE001
            for stream in self._streams:
                stream.sensors.stop()
            self.get_logger().error(f"activate failed: {e}")
            return TransitionCallbackReturn.FAILURE
        tr = sessions[0].tracker
        for stream, session in zip(self._streams, sessions):
            queue = FrameQueue(p.max_queue_clips * (tr.clip_length - tr.clip_overlap))
            stream.out.start(p, tr.class_names, tr.seediness_threshold)
            if self._worker is None:
                self._worker = Worker(session, queue, stream.stats, stream.out.publish,
                                      self.get_logger(), p.idle_flush_sec, stream.camera)
            else:
                self._worker.add_lane(stream.camera, session, queue, stream.stats,
                                      stream.out.publish)
            stream.intake.start(p, queue, tr.cfg)
        ret = super().on_activate(state)
        for stream in self._streams:
            stream.out.activated()  # ~/label_info, now that its publisher is active
        self._worker.start()
        for stream in self._streams:
            stream.subscribe(p)
        self.get_logger().info(f"active: {self._model.summary()}, {len(self._streams)} "
                               f"camera(s), queue {self._worker.queue.capacity} frames each")
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
        discarded = sum(stream.stop() for stream in self._streams)
        if self._worker is not None:
            if not self._worker.stop(timeout):
                self.get_logger().warning(f"the worker is still in a clip after {timeout:.1f} "
                                          f"s; its results will not be published")
            self._worker = None
        for stream in self._streams:
            stream.stop_outputs()
        if discarded:
            self.get_logger().warning(f"stopping: {discarded} queued frame(s) dropped")
        self._model.free(release)

    def _destroy_entities(self) -> None:
        for stream in self._streams:
            stream.destroy()
        for ent, destroy in ((self._pub_diag, self.destroy_publisher),
                             (self._flush_srv, self.destroy_service),
                             (self._diag_timer, self.destroy_timer)):
            if ent is not None:
                destroy(ent)
        self._pub_diag = self._flush_srv = self._diag_timer = self._p = None

    def destroy_node(self) -> None:
        """Destroy the node and its lifecycle state machine.

        rclpy's LifecycleNode leaves its state machine, which holds the rcl node, to the garbage
        collector; until it goes, the DDS participant lives on, and with it the Fast DDS
        shared-memory segment in /dev/shm (16 MiB with the node's profile). A process that ends
        with os._exit (main.run) never collects it, so every start of the node left its segment
        behind until the next reboot."""
        machine = getattr(self, "_state_machine", None)  # rclpy's own attribute; absent: no-op
        super().destroy_node()
        if machine is not None and hasattr(machine, "destroy_when_not_in_use"):
            machine.destroy_when_not_in_use()

    def shutdown_now(self) -> None:
        """On SIGINT/SIGTERM: stop within ~SIGNAL_STOP_SEC, publishing while the context lives."""
        self._stop(SIGNAL_STOP_SEC, release=False)  # the process ends: no need to trim
        for stream in self._streams:
            if stream.out is not None:
                stream.out.closing = True

    # -- the first camera's parts (a single-camera node's only ones; tests use them) ---------
    @property
    def _intake(self) -> Any:
        return self._streams[0].intake

    @property
    def _stats(self) -> Any:
        return self._streams[0].stats

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
        reqs = [FlushRequest(notify=executor.wake if executor is not None else None)
                for _ in self._worker.lanes]
        for lane, req in zip(self._worker.lanes, reqs):
            lane.queue.put_control(req)  # one per camera, behind its frames
        deadline = time.monotonic() + FLUSH_TIMEOUT_SEC
        while not all(r.done.is_set() for r in reqs) and time.monotonic() < deadline:
            await NextTurn()
        response.success = all(r.done.is_set() for r in reqs)
        response.message = (f"finalised {sum(r.published for r in reqs)} frame(s)"
                            if response.success
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
            for lane in self._worker.lanes:
                lane.session.gap_reset_sec = self._p.gap_reset_sec
            thr = self._model.thresholds(values)
            if thr:
                self._worker.set_thresholds(thr)
            for stream in self._streams:
                stream.intake.params = stream.out.params = self._p
                if thr:
                    stream.out.thresholds_changed(thr)  # ~/label_info's threshold
        return SetParametersResult(successful=True)

    def _report_configure_error(self, message: str | None) -> None:
        self._configure_error.report(names.status_name(self.get_fully_qualified_name()),
                                     message, device_model(self._model.device))

    @guarded("diagnostics", lambda _: None)
    def _on_timer(self) -> None:
        p, active = self._p, self._worker is not None
        if p is None or self._pub_diag is None:
            return
        shared = {"state": "active" if active else "inactive", **self._model.info()}
        device = device_model(self._model.device)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for stream in self._streams:
            if active:
                stream.follow_publishers()
        arr.status = [stream.diagnostic(shared, self._worker, device)
                      for stream in self._streams]
        self._pub_diag.publish(arr)


def main(args: list[str] | None = None) -> int:
    """`stemseg-perception [--ros-args ...]` (stemseg_ros/main.py)."""
    from stemseg_ros.main import run

    return run(PerceptionNode, args)
