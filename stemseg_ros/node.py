"""The STEm-Seg perception node: camera images in, tracked instance masks out.

Lifecycle node ``stemseg_perception`` (see DESIGN.md "Data flow"):

- unconfigured -> configure: parameters read and validated (a bad one fails the transition with
  a message naming it), publishers and the ``~/flush`` service created.
- inactive -> activate: the checkpoint is loaded into a StreamingTracker, the worker thread
  started, the input subscribed. deactivate / cleanup free the model (and the GPU cache).
- ``autostart`` (default true) configures and activates on start.

Threads: the subscription callback only converts the image and enqueues it in a bounded queue
(the oldest frame is dropped and counted when it is full); one worker thread runs the tracker and
publishes one message per input frame, in order, with the input's header, on ``~/instances``
(TrackedInstanceArray), ``~/overlay`` (bgr8) and ``~/track_ids`` (mono16); ``/diagnostics``
reports rates, latency, queue, drops and model time about once a second.

Run: ``stemseg-perception --ros-args --params-file config/perception.yaml
-r image:=/camera/image_raw`` (what ``ros2 run stemseg_ros perception`` does).
"""
from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from stemseg_ros import conversions, params
from stemseg_ros.msg import TrackedInstanceArray

NODE_NAME = "stemseg_perception"
#: Seconds the worker waits for a frame before it checks the idle-flush timer.
_WORKER_POLL_SEC = 0.05
#: Seconds `~/flush` waits for the worker before it answers "timed out".
FLUSH_TIMEOUT_SEC = 120.0
#: Seconds between repeats of the same warning (drops, conversion errors).
_THROTTLE_SEC = 5.0
#: Latencies kept for the diagnostics percentiles.
_LATENCY_WINDOW = 512


# ----------------------------------------------------------------------------------------------
# Queue and bookkeeping (no ROS; unit-tested on their own)


@dataclass
class Frame:
    """A converted input frame on its way through the queue and the tracker."""

    rgb: np.ndarray  # (H, W, 3) uint8
    header: Header
    stamp_ns: int
    received: float  # time.monotonic() when the callback got it


@dataclass
class FlushRequest:
    """Queued behind the frames: the worker finalises the partial clip when it gets here."""

    done: threading.Event = field(default_factory=threading.Event)
    published: int = 0


class FrameQueue:
    """Bounded FIFO of frames (and flush requests) between the callback and the worker.

    When `capacity` frames wait, `put_frame` drops the oldest waiting frame (never a flush
    request) and returns how many it dropped, so a slow model processes recent frames, not a
    growing backlog.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Any] = deque()
        self._frames = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return self._frames

    def put_frame(self, frame: Any) -> int:
        dropped = 0
        with self._cond:
            while self._frames >= self.capacity:
                for i, item in enumerate(self._items):
                    if not isinstance(item, FlushRequest):
                        del self._items[i]
                        break
                self._frames -= 1
                dropped += 1
            self._items.append(frame)
            self._frames += 1
            self._cond.notify()
        return dropped

    def put_control(self, item: FlushRequest) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> Any | None:
        """The oldest item, or None after `timeout` seconds without one."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            if not isinstance(item, FlushRequest):
                self._frames -= 1
            return item

    def clear(self) -> list[Any]:
        """Remove and return everything waiting."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._frames = 0
            return items

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


@dataclass
class Stats:
    """Counters shared by the callback, the worker and the diagnostics timer (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    convert_errors: int = 0
    resets: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    proc_latencies: deque = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    convert_sec: float = 0.0  # callback time (decode + enqueue), summed
    tracker_sec: float = 0.0  # push/flush time, summed
    publish_sec: float = 0.0  # message building + drawing + publish, summed

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name not in ("lock", "latencies", "proc_latencies")}
            d["latencies"] = list(self.latencies)
            d["proc_latencies"] = list(self.proc_latencies)
            self.latencies.clear()
            self.proc_latencies.clear()
        return d


def qos_for(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT))


def matching_reliability(publisher_reliabilities: list[ReliabilityPolicy]) -> str:
    """`qos_reliability: auto`: reliable when every publisher found offers reliable (like
    rosbag2 does), best_effort otherwise (which also matches reliable publishers)."""
    if publisher_reliabilities and all(r == ReliabilityPolicy.RELIABLE
                                       for r in publisher_reliabilities):
        return "reliable"
    return "best_effort"


# ----------------------------------------------------------------------------------------------
# The node


def _logged(fn: Any) -> Any:
    """rclpy turns an exception in a transition callback into ERROR without a word: log it."""
    import functools
    import traceback

    @functools.wraps(fn)
    def wrapper(self: PerceptionNode, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return fn(self, state)
        except Exception as e:
            self.get_logger().error(f"{fn.__name__} raised {type(e).__name__}: {e}\n"
                                    f"{traceback.format_exc()}")
            raise

    return wrapper


class PerceptionNode(LifecycleNode):
    """Lifecycle node running a stemseg StreamingTracker on one camera stream."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._declare_errors = params.declare(self)
        self._p: params.PerceptionParams | None = None
        self._active = False
        self._checkpoint_path = ""
        self._device = ""
        self._tracker: Any = None
        self._tracker_defaults: dict[str, Any] = {}
        self._pending_thresholds: dict[str, Any] = {}
        self._thr_lock = threading.Lock()
        self._queue: FrameQueue | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._stats = Stats()
        self._sub = None
        self._sub_reliability = ""
        self._pub_instances = self._pub_overlay = self._pub_track_ids = None
        self._pub_diag = None
        self._flush_srv = None
        self._diag_timer = None
        self._diag_last = (time.monotonic(), 0, 0)
        self._cb_flush = MutuallyExclusiveCallbackGroup()
        # Worker-thread state.
        self._last_size: tuple[int, int] | None = None
        self._last_stamp: int | None = None
        self._last_frame_time = 0.0
        self._id_offset = 0  # added to tracker IDs after a reset, so IDs are never reused
        self._max_id = 0
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- lifecycle ---------------------------------------------------------------------------
    @_logged
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        if self._declare_errors:
            for msg in self._declare_errors.values():
                log.error(f"configure failed: {msg}")
            return TransitionCallbackReturn.FAILURE
        try:
            p = self._read_params()
        except params.ParamError as e:
            log.error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        device = self._device
        out_qos = qos_for("reliable", p.qos_depth)
        pub_events = PublisherEventCallbacks(incompatible_qos=self._on_publisher_incompatible_qos)
        self._pub_instances = self.create_lifecycle_publisher(
            TrackedInstanceArray, "~/instances", out_qos, event_callbacks=pub_events)
        self._pub_overlay = self.create_lifecycle_publisher(
            Image, "~/overlay", out_qos, event_callbacks=pub_events)
        self._pub_track_ids = self.create_lifecycle_publisher(
            Image, "~/track_ids", out_qos, event_callbacks=pub_events)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._flush_srv = self.create_service(Trigger, "~/flush", self._on_flush,
                                              callback_group=self._cb_flush)
        self._diag_last = (time.monotonic(), self._stats.frames_in, self._stats.frames_out)
        self._diag_timer = self.create_timer(p.diagnostics_period_sec, self._on_diagnostics_timer)
        log.info(f"configured: checkpoint {self._checkpoint_path}, device {device}, input "
                 f"'{self._input_topic()}' ({p.input_transport}, qos {p.qos_reliability})")
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        if self._worker is not None:  # a worker from the last activation is finishing a clip
            self._worker.join(timeout=FLUSH_TIMEOUT_SEC)
            if self._worker.is_alive():
                log.error("activate failed: the previous worker is still finishing a clip; "
                          "try again in a moment")
                return TransitionCallbackReturn.FAILURE
            self._worker = None
            self._free_tracker()
        try:  # parameters may have changed since configure (allowed while inactive)
            p = self._read_params()
        except params.ParamError as e:
            log.error(f"activate failed: {e}")
            return TransitionCallbackReturn.FAILURE
        try:
            self._tracker = self._load_tracker(p)
        except Exception as e:  # noqa: BLE001 - any load error must fail the transition, not crash
            log.error(f"activate failed: cannot load checkpoint '{self._checkpoint_path}' on "
                      f"{self._device}: {e}")
            self._free_tracker()
            return TransitionCallbackReturn.FAILURE
        tr = self._tracker
        stride = tr.clip_length - tr.clip_overlap
        self._queue = FrameQueue(p.max_queue_clips * stride)
        self._last_size = self._last_stamp = None
        self._id_offset = self._max_id  # a new tracker counts from 1: IDs are never reused
        self._last_frame_time = time.monotonic()
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="stemseg-worker",
                                        daemon=True)
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            self._free_tracker()
            return ret
        self._worker.start()
        self._active = True
        self._subscribe()
        log.info(f"active: T={tr.clip_length}, Tc={tr.clip_overlap}, queue {self._queue.capacity}"
                 f" frames, thresholds seediness={tr.seediness_threshold} "
                 f"mask={tr.mask_threshold} foreground={tr.foreground_threshold} "
                 f"min_area={tr.min_mask_area}"
                 + (", flip test on (2 network passes per clip)" if tr.flip_test else ""))
        return ret

    @_logged
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    @_logged
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    @_logged
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}: freeing the model")
        self._deactivate()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def _read_params(self) -> params.PerceptionParams:
        """Read + validate the parameters, find the checkpoint, resolve the device."""
        p = params.read(self)
        ckpt = params.resolve_checkpoint(p.checkpoint, _share_dir())
        device = _resolve_device(p.device)
        self._p, self._checkpoint_path, self._device = p, str(ckpt), device
        return p

    def _deactivate(self) -> None:
        """Stop input and worker (publishing what the tracker still holds), free the model."""
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if self._worker is not None:
            self._stop.set()
            if self._queue is not None:
                self._queue.wake()
            self._worker.join(timeout=FLUSH_TIMEOUT_SEC)
            if self._worker.is_alive():
                # Still inside a clip: freeing the model under it would crash it. Keep it; it
                # exits after this clip (the stop flag is set) and activation waits for that.
                self.get_logger().error(
                    f"worker still busy after {FLUSH_TIMEOUT_SEC:.0f} s; the model is freed "
                    f"once it finishes its clip")
            else:
                self._worker = None
        if self._queue is not None:
            discarded = 0
            for item in self._queue.clear():
                if isinstance(item, FlushRequest):
                    item.done.set()
                else:
                    discarded += 1
            if discarded:
                with self._stats.lock:
                    self._stats.dropped += discarded
                self.get_logger().warning(f"deactivating: {discarded} queued frames dropped")
        self._active = False
        if self._worker is None:
            self._free_tracker()

    def _destroy_entities(self) -> None:
        for pub in (self._pub_instances, self._pub_overlay, self._pub_track_ids):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._pub_instances = self._pub_overlay = self._pub_track_ids = None
        if self._pub_diag is not None:
            self.destroy_publisher(self._pub_diag)
            self._pub_diag = None
        if self._flush_srv is not None:
            self.destroy_service(self._flush_srv)
            self._flush_srv = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._p = None

    # -- model -------------------------------------------------------------------------------
    def _load_tracker(self, p: params.PerceptionParams) -> Any:
        from stemseg_core.inference.tracker import StreamingTracker

        overrides = p.tracker_overrides()
        if p.input_width and p.input_height:
            # Aspect kept: the image is scaled to fit input_width x input_height.
            overrides += [f"input.min_side={min(p.input_width, p.input_height)}",
                          f"input.max_side={max(p.input_width, p.input_height)}"]
        tracker = StreamingTracker.from_checkpoint(self._checkpoint_path, device=self._device,
                                                   overrides=overrides or None)
        self._tracker_defaults = {k: getattr(tracker, k) for k in params.THRESHOLDS}
        self._tracker_defaults["classes"] = list(tracker.classes)
        tracker.set_thresholds(**p.thresholds())
        return tracker

    def _free_tracker(self) -> None:
        if self._tracker is None:
            return
        on_cuda = getattr(getattr(self._tracker, "device", None), "type", "") == "cuda"
        self._tracker = None
        gc.collect()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    # -- input -------------------------------------------------------------------------------
    def _input_topic(self) -> str:
        assert self._p is not None
        return "image/compressed" if self._p.input_transport == "compressed" else "image"

    def _subscribe(self) -> None:
        p = self._p
        assert p is not None
        topic = self._input_topic()
        reliability = p.qos_reliability
        if reliability == "auto":
            reliability = self._auto_reliability(topic)
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        msg_type = CompressedImage if p.input_transport == "compressed" else Image
        self._sub = self.create_subscription(msg_type, topic, self._on_image,
                                             qos_for(reliability, p.qos_depth),
                                             event_callbacks=events)
        self._sub_reliability = reliability
        self.get_logger().info(f"subscribed to {self._sub.topic_name} ({msg_type.__name__}, "
                               f"{reliability}, depth {p.qos_depth})")

    def _auto_reliability(self, topic: str) -> str:
        name = self.resolve_topic_name(topic)
        infos = self.get_publishers_info_by_topic(name)
        return matching_reliability([i.qos_profile.reliability for i in infos])

    def _on_incompatible_qos(self, info: Any) -> None:
        p = self._p
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        self.get_logger().warning(
            f"incompatible QoS on input '{self._sub.topic_name if self._sub else '?'}': a "
            f"publisher cannot give what this node requests ({policy}: we request "
            f"{self._sub_reliability}, depth {p.qos_depth if p else '?'}); no images will "
            f"arrive from it. Set qos_reliability to best_effort or auto "
            f"({info.total_count} incompatible publisher(s) so far)")

    def _on_publisher_incompatible_qos(self, info: Any) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        self.get_logger().warning(
            f"incompatible QoS on an output topic: a subscriber requests more than this node "
            f"offers ({policy}; we offer reliable, volatile); it will receive nothing "
            f"({info.total_count} so far)")

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Convert and enqueue; nothing else (the worker does the rest)."""
        t0 = time.perf_counter()
        with self._stats.lock:
            self._stats.frames_in += 1
        try:
            if isinstance(msg, CompressedImage):
                rgb = conversions.compressed_to_rgb(msg)
            else:
                rgb = conversions.image_to_rgb(msg)
        except Exception as e:  # noqa: BLE001 - a bad frame must never stop the node
            with self._stats.lock:
                self._stats.convert_errors += 1
                n = self._stats.convert_errors
            self.get_logger().warning(f"dropped a frame that cannot be converted ({n} so far): "
                                      f"{e}", throttle_duration_sec=_THROTTLE_SEC)
            return
        queue = self._queue
        if queue is None or not self._active:
            return
        frame = Frame(rgb, msg.header, conversions.stamp_ns(msg.header), time.monotonic())
        dropped = queue.put_frame(frame)
        with self._stats.lock:
            self._stats.convert_sec += time.perf_counter() - t0
            self._stats.dropped += dropped
            total = self._stats.dropped
        if dropped:
            self.get_logger().warning(
                f"input queue full ({queue.capacity} frames): dropped the oldest frame, {total} "
                f"dropped so far; the model is slower than the camera (raise max_queue_clips, "
                f"lower the resolution or use a GPU)", throttle_duration_sec=_THROTTLE_SEC)

    # -- worker ------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        log = self.get_logger()
        queue = self._queue
        assert queue is not None
        while not self._stop.is_set():
            item = queue.get(_WORKER_POLL_SEC)
            try:
                if item is None:
                    self._maybe_idle_flush()
                elif isinstance(item, FlushRequest):
                    item.published = self._flush("flush requested")
                    item.done.set()
                else:
                    self._process(item)
            except Exception as e:  # noqa: BLE001 - the worker must survive any one frame
                lost = self._tracker.pending if self._tracker is not None else 0
                with self._stats.lock:
                    self._stats.dropped += lost
                log.error(f"processing failed, resetting the tracker ({lost} buffered frames "
                          f"dropped): {type(e).__name__}: {e}")
                self._reset_tracker()
                if isinstance(item, FlushRequest):
                    item.done.set()
        try:
            self._flush("deactivating")
        except Exception as e:  # noqa: BLE001
            log.error(f"final flush failed: {type(e).__name__}: {e}")

    def _apply_pending_thresholds(self) -> None:
        with self._thr_lock:
            pending, self._pending_thresholds = self._pending_thresholds, {}
        if pending and self._tracker is not None:
            self._tracker.set_thresholds(**pending)
            self.get_logger().info(f"thresholds updated: {pending}")

    def _process(self, frame: Frame) -> None:
        tracker = self._tracker
        p = self._p
        if tracker is None or p is None:
            return
        self._apply_pending_thresholds()
        size = frame.rgb.shape[:2]
        log = self.get_logger()
        if self._last_size is not None and size != self._last_size:
            log.warning(f"image size changed from {self._last_size[1]}x{self._last_size[0]} to "
                        f"{size[1]}x{size[0]}: finishing the running clip and resetting the "
                        f"tracker (new track IDs)")
            self._restart()
        elif self._last_stamp is not None and frame.stamp_ns < self._last_stamp:
            log.warning(f"image stamp jumped back in time by "
                        f"{(self._last_stamp - frame.stamp_ns) / 1e9:.3f} s (bag restarted?): "
                        f"resetting the tracker (new track IDs)")
            self._restart()
        elif (self._last_stamp is not None and p.gap_reset_sec > 0
              and frame.stamp_ns - self._last_stamp > p.gap_reset_sec * 1e9):
            log.info(f"gap of {(frame.stamp_ns - self._last_stamp) / 1e9:.3f} s between image "
                     f"stamps (> gap_reset_sec={p.gap_reset_sec}): starting a new clip sequence")
            self._restart()
        self._last_size, self._last_stamp = size, frame.stamp_ns
        self._last_frame_time = time.monotonic()
        t0 = time.perf_counter()
        results = tracker.push(frame.rgb, frame)
        with self._stats.lock:
            self._stats.tracker_sec += time.perf_counter() - t0
        self._publish(results)

    def _maybe_idle_flush(self) -> None:
        p, tracker = self._p, self._tracker
        if p is None or tracker is None or p.idle_flush_sec <= 0 or tracker.pending == 0:
            return
        if time.monotonic() - self._last_frame_time >= p.idle_flush_sec:
            self._flush(f"no frame for {p.idle_flush_sec} s")

    def _flush(self, why: str) -> int:
        """Finalise the partial clip; returns how many frames were published."""
        tracker = self._tracker
        if tracker is None or tracker.pending == 0:
            return 0
        self._apply_pending_thresholds()
        t0 = time.perf_counter()
        results = tracker.flush()
        with self._stats.lock:
            self._stats.tracker_sec += time.perf_counter() - t0
        self._publish(results)
        self.get_logger().debug(f"{why}: finalised {len(results)} frame(s)")
        return len(results)

    def _restart(self) -> None:
        """Publish what the tracker holds, then start a new stream; IDs continue upwards."""
        self._flush("tracker reset")
        self._reset_tracker()

    def _reset_tracker(self) -> None:
        if self._tracker is not None:
            self._tracker.reset()
        self._id_offset = self._max_id
        self._last_size = self._last_stamp = None
        with self._stats.lock:
            self._stats.resets += 1

    def _publish(self, results: list[Any]) -> None:
        p = self._p
        if p is None:
            return
        for res in results:
            t0 = time.perf_counter()
            frame: Frame = res.stamp
            insts = res.instances
            if self._id_offset:
                insts = [dataclasses.replace(i, track_id=i.track_id + self._id_offset)
                         for i in insts]
            for i in insts:
                self._max_id = max(self._max_id, int(i.track_id))
            self._pub_instances.publish(conversions.frame_result_to_msg(res, frame.header, insts))
            h, w = res.image_size
            if p.publish_overlay and self._pub_overlay.get_subscription_count() > 0:
                from stemseg_core.visualize import draw_overlay

                self._pub_overlay.publish(conversions.array_to_image(
                    draw_overlay(frame.rgb, insts), "bgr8", frame.header))
            if p.publish_track_ids and self._pub_track_ids.get_subscription_count() > 0:
                from stemseg_core.visualize import track_id_image

                self._pub_track_ids.publish(conversions.array_to_image(
                    track_id_image(insts, h, w), "mono16", frame.header))
            now_ns = self.get_clock().now().nanoseconds
            with self._stats.lock:
                self._stats.frames_out += 1
                self._stats.publish_sec += time.perf_counter() - t0
                self._stats.latencies.append((now_ns - frame.stamp_ns) / 1e9)
                self._stats.proc_latencies.append(time.monotonic() - frame.received)

    # -- services, parameters, diagnostics -----------------------------------------------------
    def _on_flush(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        queue = self._queue
        if not self._active or queue is None:
            response.success = False
            response.message = "not active: nothing to flush (activate the node first)"
            return response
        req = FlushRequest()
        queue.put_control(req)
        if req.done.wait(FLUSH_TIMEOUT_SEC):
            response.success = True
            response.message = f"finalised {req.published} frame(s)"
        else:
            response.success = False
            response.message = f"flush did not finish within {FLUSH_TIMEOUT_SEC} s"
        return response

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        live: dict[str, Any] = {}
        for prm in changes:
            spec = params.SPEC_BY_NAME.get(prm.name)
            if spec is None:
                continue
            try:
                params.check_value(prm.name, prm.value)
            except (params.ParamError, TypeError) as e:
                return SetParametersResult(successful=False, reason=str(e))
            if self._active and not spec.live:
                return SetParametersResult(
                    successful=False,
                    reason=f"parameter '{prm.name}' cannot change while the node is active (it "
                           f"needs a reload): deactivate, set it, activate again")
            if self._active:
                live[prm.name] = prm.value
        for prm in changes:
            self._declare_errors.pop(prm.name, None)
        if live and self._p is not None:
            thr = {}
            for name, value in live.items():
                if name in params.THRESHOLDS or name == "classes":
                    if name == "classes":
                        value = [c for c in (value or []) if c]
                    thr[name] = (self._tracker_defaults.get(name, value)
                                 if value == params.FROM_CHECKPOINT else value)
            if "classes" in thr and self._tracker is not None:
                bad = [c for c in thr["classes"] if c not in self._tracker.class_names[1:]]
                if bad:
                    return SetParametersResult(
                        successful=False, reason=f"parameter 'classes': unknown {bad}; the model "
                                                 f"knows {self._tracker.class_names[1:]}")
            self._p = self._p.replace(**{k: (tuple(v) if k == "classes" else v)
                                         for k, v in live.items()})
            if thr:
                with self._thr_lock:
                    self._pending_thresholds.update(thr)
        return SetParametersResult(successful=True)

    def _on_diagnostics_timer(self) -> None:
        p = self._p
        if p is None or self._pub_diag is None:
            return
        if self._active and p.qos_reliability == "auto" and self._sub is not None:
            want = self._auto_reliability(self._input_topic())
            if want != self._sub_reliability:
                self.get_logger().info(f"qos_reliability auto: publishers now offer {want}, "
                                       f"re-subscribing")
                self.destroy_subscription(self._sub)
                self._subscribe()
        self._pub_diag.publish(self._diagnostics())

    def _diagnostics(self) -> DiagnosticArray:
        s = self._stats.snapshot()
        now = time.monotonic()
        t_prev, in_prev, out_prev = self._diag_last
        dt = max(now - t_prev, 1e-6)
        self._diag_last = (now, s["frames_in"], s["frames_out"])
        lat = np.asarray(s["latencies"]) if s["latencies"] else None
        plat = np.asarray(s["proc_latencies"]) if s["proc_latencies"] else None
        tracker = self._tracker
        timings = dict(getattr(tracker, "last_timings", {}) or {})
        n_out = max(s["frames_out"], 1)
        n_pubs = self._sub.get_publisher_count() if self._sub is not None else 0
        values = {
            "state": "active" if self._active else "inactive",
            "device": self._device,
            "checkpoint": self._checkpoint_path,
            "input_topic": self._sub.topic_name if self._sub is not None else "",
            # publishers this node's reader has matched: images sent before it is >= 1 are lost
            "input_publishers": str(n_pubs),
            "input_rate_hz": f"{(s['frames_in'] - in_prev) / dt:.2f}",
            "output_rate_hz": f"{(s['frames_out'] - out_prev) / dt:.2f}",
            "latency_stamp_to_publish_p50_s": f"{np.median(lat):.4f}" if lat is not None else "",
            "latency_stamp_to_publish_max_s": f"{lat.max():.4f}" if lat is not None else "",
            "latency_receive_to_publish_p50_s": f"{np.median(plat):.4f}" if plat is not None
            else "",
            "latency_receive_to_publish_max_s": f"{plat.max():.4f}" if plat is not None else "",
            "queue_depth": str(len(self._queue) if self._queue is not None else 0),
            "queue_capacity": str(self._queue.capacity if self._queue is not None else 0),
            "frames_in": str(s["frames_in"]),
            "frames_out": str(s["frames_out"]),
            "dropped_frames": str(s["dropped"]),
            "conversion_errors": str(s["convert_errors"]),
            "tracker_resets": str(s["resets"]),
            "memory_rss_mb": f"{process_rss_mb():.1f}",
            "model_time_per_clip_s": f"{timings.get('total', 0.0):.4f}",
            "tracker_time_per_frame_s": f"{s['tracker_sec'] / n_out:.5f}",
            "node_time_per_frame_s": f"{(s['convert_sec'] + s['publish_sec']) / n_out:.5f}",
        }
        if self._device.startswith("cuda") and tracker is not None:
            import torch

            values["gpu_memory_mb"] = f"{torch.cuda.memory_allocated() / 2**20:.1f}"
        for stage, sec in timings.items():
            values[f"clip_{stage}_s"] = f"{sec:.4f}"
        status = DiagnosticStatus(name=f"{self.get_name()}: pipeline", hardware_id=self._device)
        status.level, status.message = DiagnosticStatus.OK, values["state"]
        if s["dropped"] or s["convert_errors"]:
            status.level = DiagnosticStatus.WARN
            status.message = (f"{values['state']}; {s['dropped']} frame(s) dropped, "
                              f"{s['convert_errors']} not convertible")
        elif self._active and n_pubs == 0:
            status.level = DiagnosticStatus.WARN
            status.message = f"active; no publisher on {values['input_topic']}"
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [status]
        return arr


def process_rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _share_dir() -> str | None:
    try:
        from ament_index_python.packages import get_package_share_directory

        return get_package_share_directory("stemseg_ros")
    except Exception:  # noqa: BLE001 - not installed: relative paths resolve against the cwd only
        return None


def _resolve_device(name: str) -> str:
    from stemseg_core.config import ConfigError, resolve_device

    try:
        return resolve_device(name)
    except ConfigError as e:
        raise params.ParamError(f"parameter 'device': {e}") from None


def main(args: list[str] | None = None) -> int:
    """`stemseg-perception [--ros-args ...]`: run the node until Ctrl-C."""
    rclpy.init(args=args)
    node = PerceptionNode()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._deactivate()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
