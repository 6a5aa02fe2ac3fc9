"""The node's inference thread: bounded frame queues, counters, and the worker that runs the
stream sessions (stemseg_core StreamSession around a StreamingTracker; one per camera, on one
network) and hands results on.

No ROS here: the node gives the worker a `publish(results)` callable and a logger
(``error/warning/info/debug`` taking a message).
"""
from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stemseg_ros.memory import release_memory

#: Seconds the worker waits for a frame before it checks the idle-flush timer.
POLL_SEC = 0.05
#: Default of the node's idle_flush_sec: a pause after which the partial clip is finalised and
#: the clip buffers' memory given back.
DEFAULT_IDLE_FLUSH_SEC = 1.0
#: Latencies kept for the diagnostics percentiles.
LATENCY_WINDOW = 512
#: Frames over which the worker's time per frame is averaged (several clips).
COST_WINDOW = 64


@dataclass
class Frame:
    """A converted input frame on its way through the queue and the tracker."""

    image: np.ndarray  # (H, W, 3) uint8 RGB camera image
    header: Any  # std_msgs/Header of the input message
    stamp_ns: int
    prev_stamp_ns: int | None  # stamp of the frame received before this one (kept or not)
    received: float  # time.monotonic() when the callback got it
    roi: tuple[int, int, int, int] | None = None  # (x, y, w, h) given to the model; None = all
    #: (H, W) of the camera image when `image` was decoded smaller (JPEG at a reduced scale):
    #: results are mapped back to it. None: `image` is the camera image's full size.
    full_size: tuple[int, int] | None = None

    def model_input(self) -> np.ndarray:
        """(h, w, 3) uint8 RGB: the region of interest, or the whole image."""
        if self.roi is None:
            return self.image
        x, y, w, h = self.roi
        return self.image[y:y + h, x:x + w]


@dataclass
class FlushRequest:
    """Queued behind the frames: the worker finalises the partial clip when it gets here.

    `notify` (any thread may call it) is called once `done` is set, e.g. to wake the executor
    whose service callback awaits the request."""

    done: threading.Event = field(default_factory=threading.Event)
    published: int = 0
    notify: Callable[[], None] | None = None

    def finish(self) -> None:
        self.done.set()
        if self.notify is not None:
            self.notify()


class FrameQueue:
    """Bounded FIFO of frames (and flush requests) between the callback and the worker.

    When `capacity` frames wait, `put_frame` drops the oldest waiting frame (never a flush
    request) and returns how many it dropped.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Any] = deque()
        self._frames = 0
        self._cond = threading.Condition()
        #: set on every new item and on wake() (the worker's, to wait on all its queues at once)
        self.bell: threading.Event | None = None

    def _ring(self) -> None:
        if self.bell is not None:
            self.bell.set()

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
        self._ring()
        return dropped

    def put_control(self, item: FlushRequest) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()
        self._ring()

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
        self._ring()


COUNTERS = ("frames_in", "frames_skipped", "frames_out", "dropped", "convert_errors",
            "frames_too_large", "frames_resized", "worker_errors", "out_of_memory", "resets")


@dataclass
class Stats:
    """Counters (cumulative) shared by the callback, the worker and diagnostics (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_in: int = 0  # converted or not
    frames_skipped: int = 0  # left out to keep max_input_rate
    frames_out: int = 0
    dropped: int = 0  # queue full, or lost with a failed clip, or left at deactivate
    convert_errors: int = 0
    frames_too_large: int = 0  # over max_image_pixels, dropped before decoding
    frames_resized: int = 0  # resized into a model input shape the stream has (no new build)
    worker_errors: int = 0
    out_of_memory: int = 0
    resets: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    proc_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    convert_sec: float = 0.0  # callback time (decode + enqueue), summed
    tracker_sec: float = 0.0  # push/flush time, summed
    publish_sec: float = 0.0  # message building + publish, summed
    costs: deque = field(default_factory=lambda: deque(maxlen=COST_WINDOW))  # s per frame
    clips: int = 0  # pushes that ran a clip

    def add(self, **counts: float) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def snapshot(self) -> dict[str, Any]:
        """All values; the latency windows are returned and cleared."""
        with self.lock:
            d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name not in ("lock", "latencies", "proc_latencies", "costs")}
            d["latencies"] = list(self.latencies)
            d["proc_latencies"] = list(self.proc_latencies)
            self.latencies.clear()
            self.proc_latencies.clear()
        return d

    def record_latency(self, stamp_to_publish_ns: int, received: float,
                       publish_sec: float) -> None:
        with self.lock:
            self.latencies.append(stamp_to_publish_ns / 1e9)
            self.proc_latencies.append(time.monotonic() - received)
            self.publish_sec += publish_sec

    def frame_cost(self) -> float:
        """Mean seconds the worker spent per frame over the last COST_WINDOW frames; 0 until a
        clip has run (before that only the cheap buffering is measured)."""
        with self.lock:
            return sum(self.costs) / len(self.costs) if self.clips and self.costs else 0.0


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA (or host) out of memory, as torch raises it."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "out of memory" in str(error).lower())


@dataclass
class Lane:
    """One camera's way through the worker: its queue, stream session, counters and outputs."""

    name: str
    session: Any
    queue: FrameQueue
    stats: Stats
    publish: Callable[[list[Any]], None]
    last_frame_time: float = field(default_factory=time.monotonic)
    idle: bool = True  # no frame since the last idle flush (nothing to finalise or free)


class Worker:
    """Runs stream sessions (StreamSession) on the frames of their queues in one thread.

    One lane per camera (:meth:`add_lane`; the constructor's is the first, named ""): the
    thread takes the next waiting item of each lane in turn (round robin), so cameras due
    together share the network evenly. Results go to the lane's `publish(results)` in order. A
    failing clip is logged with its traceback, counted, its frames dropped, and the next frames
    processed; out of memory also frees the GPU cache. Thresholds given to
    :meth:`set_thresholds` apply (to every lane) before the next frame.
    """

    def __init__(self, session: Any, queue: FrameQueue, stats: Stats,
                 publish: Callable[[list[Any]], None], logger: Any,
                 idle_flush_sec: float = 0.0, name: str = "") -> None:
        self.log = logger
        self.idle_flush_sec = idle_flush_sec
        self.lanes: list[Lane] = []
        self._bell = threading.Event()  # rung by every lane's queue on a new item
        self._turn = 0  # the lane served first next time
        self._stop = threading.Event()
        self._flush_on_stop = True
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: "WxH" while the engines for frames of that size are being built, else ""
        self.warming_up_for = ""
        self.thread = threading.Thread(target=self._run, name="stemseg-worker", daemon=True)
        self.add_lane(name, session, queue, stats, publish)

    def add_lane(self, name: str, session: Any, queue: FrameQueue, stats: Stats,
                 publish: Callable[[list[Any]], None]) -> Lane:
        """Another camera (before start)."""
        queue.bell = self._bell
        lane = Lane(name, session, queue, stats, publish)
        self.lanes.append(lane)
        return lane

    @property
    def session(self) -> Any:
        """The first lane's session (the only one of a single-camera node)."""
        return self.lanes[0].session

    @property
    def queue(self) -> FrameQueue:
        return self.lanes[0].queue

    @property
    def stats(self) -> Stats:
        return self.lanes[0].stats

    def lane(self, name: str) -> Lane:
        return next(lane for lane in self.lanes if lane.name == name)

    # -- control (any thread) ------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float, flush: bool = True) -> bool:
        """Stop after the current clip (finalising the buffered frames with `flush`); True once
        the thread has ended within `timeout` seconds."""
        self._flush_on_stop = flush
        self._stop.set()
        self._bell.set()
        self.thread.join(timeout=timeout)
        return not self.thread.is_alive()

    def set_thresholds(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._pending.update(values)

    def info(self, name: str = "") -> dict[str, str]:
        """Diagnostics key/values of lane `name`'s queue and its last clip's timings."""
        lane = self.lane(name)
        timings = dict(getattr(lane.session.tracker, "last_timings", {}) or {})
        out = {"queue_depth": str(len(lane.queue)), "queue_capacity": str(lane.queue.capacity),
               "model_time_per_clip_s": f"{timings.get('total', 0.0):.4f}",
               "worker_time_per_frame_s": f"{lane.stats.frame_cost():.4f}"}
        out.update({f"clip_{stage}_s": f"{sec:.4f}" for stage, sec in timings.items()})
        if self.warming_up_for:
            out["warming_up_for"] = self.warming_up_for
        return out

    # -- the thread ----------------------------------------------------------------------------
    def _next(self) -> tuple[Lane | None, Any]:
        """The next waiting item, lanes in turn; (None, None) after POLL_SEC without one."""
        self._bell.clear()
        n = len(self.lanes)
        for j in range(n):
            lane = self.lanes[(self._turn + j) % n]
            item = lane.queue.get(0)
            if item is not None:
                self._turn = (self._turn + j + 1) % n
                return lane, item
        self._bell.wait(POLL_SEC)
        return None, None

    def _run(self) -> None:
        while not self._stop.is_set():
            lane, item = self._next()
            try:
                if lane is None:
                    for each in self.lanes:
                        self._maybe_idle_flush(each)
                elif isinstance(item, FlushRequest):
                    item.published = self._flush(lane, "flush requested")
                else:
                    self._process(lane, item)
            except Exception as e:  # noqa: BLE001 - the worker must survive any one clip
                self._failed_guarded(lane or self.lanes[0], e)
            finally:
                if isinstance(item, FlushRequest):
                    item.finish()
        if self._flush_on_stop:
            for lane in self.lanes:
                try:
                    self._flush(lane, "stopping")
                except Exception as e:  # noqa: BLE001
                    self._failed_guarded(lane, e)

    def _failed_guarded(self, lane: Lane, e: Exception) -> None:
        try:
            self._failed(lane, e)
        except Exception as again:  # noqa: BLE001 - the thread must not end
            self.log.error(f"recovering from a failed clip failed too: {type(again).__name__}: "
                           f"{str(again)[:300]}")

    def _failed(self, lane: Lane, e: Exception) -> None:
        lost = lane.session.tracker.pending
        lane.session.drop()
        oom = is_out_of_memory(e)
        lane.stats.add(dropped=lost, resets=1, **({"out_of_memory": 1} if oom
                                                  else {"worker_errors": 1}))
        where = f" (camera {lane.name})" if lane.name else ""
        if oom:
            release_memory()
            self.log.error(f"out of memory{where}: skipped the clip ({lost} frame(s) dropped), "
                           f"freed the GPU cache, new track sequence; lower input_width/"
                           f"input_height or clip_length, or use a larger GPU ({e})")
        else:
            self.log.error(f"processing failed{where}; {lost} buffered frame(s) dropped, new "
                           f"track sequence, going on with the next frames:\n"
                           f"{traceback.format_exc()}")

    def _apply_thresholds(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            try:
                for lane in self.lanes:
                    lane.session.tracker.set_thresholds(**pending)
                self.log.info(f"thresholds updated: {pending}")
            except Exception as e:  # noqa: BLE001 - checked on set; the stream goes on
                self.log.error(f"thresholds not applied: {type(e).__name__}: {str(e)[:300]}")

    def _process(self, lane: Lane, frame: Frame) -> None:
        self._apply_thresholds()
        lane.last_frame_time = time.monotonic()
        lane.idle = False
        session = lane.session
        size = frame.full_size or frame.model_input().shape[:2]
        if getattr(session, "needs_build", lambda _: False)(size):
            self._warm_up(session, size)
        t0 = time.perf_counter()
        resets, resized = session.resets, session.shapes.resized
        results = session.push(frame.model_input(), frame.stamp_ns, frame,
                               frame.prev_stamp_ns, size=frame.full_size)
        dt = time.perf_counter() - t0
        lane.stats.add(tracker_sec=dt, resets=session.resets - resets,
                       frames_resized=session.shapes.resized - resized)
        self._publish(lane, results, dt)

    def _warm_up(self, session: Any, size: tuple[int, int]) -> None:
        """Build the engines for frames of `size` (no camera_info or expected_input_size told
        it before activate, or the size changed); the queue keeps the newest frames meanwhile."""
        self.warming_up_for = f"{size[1]}x{size[0]}"
        self.log.warning(f"warming up for {self.warming_up_for} frames: building the engines for "
                         f"this size now (set expected_input_size or publish camera_info to have "
                         f"them built on activate); the queue keeps the newest frames meanwhile")
        t0 = time.perf_counter()
        try:
            session.prepare(size)  # its leftovers are given back at the next pause
        finally:
            self.warming_up_for = ""
        self.log.info(f"warmed up for {size[1]}x{size[0]} frames in "
                      f"{time.perf_counter() - t0:.1f} s")

    def _flush(self, lane: Lane, why: str) -> int:
        self._apply_thresholds()
        t0 = time.perf_counter()
        results = lane.session.flush()
        lane.stats.add(tracker_sec=time.perf_counter() - t0)
        self._publish(lane, results, 0.0)
        if results:
            self.log.debug(f"{why}: finalised {len(results)} frame(s) {lane.name}".rstrip())
        return len(results)

    def _publish(self, lane: Lane, results: list[Any], tracker_sec: float) -> None:
        t0 = time.perf_counter()
        if results:
            lane.publish(results)
        cost = tracker_sec + time.perf_counter() - t0
        if tracker_sec:
            with lane.stats.lock:
                lane.stats.costs.append(cost)
                lane.stats.clips += bool(results)

    def _maybe_idle_flush(self, lane: Lane) -> None:
        """After idle_flush_sec without frames of the lane (once per pause): finalise its
        partial clip and give the clip buffers' memory back to the system."""
        if (self.idle_flush_sec <= 0 or lane.idle
                or time.monotonic() - lane.last_frame_time < self.idle_flush_sec):
            return
        lane.idle = True
        if lane.session.tracker.pending:
            self._flush(lane, f"no frame for {self.idle_flush_sec} s")
        release_memory()
