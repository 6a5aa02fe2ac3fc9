"""The node's inference thread: counters, and the worker that runs the stream sessions
(stemseg_core StreamSession around a StreamingTracker; one per camera, on one network) on the
frames of their queues (frame_queue.py) and hands results on.

Several cameras (the sessions of one TrackerGroup) are served in rounds: one waiting item of
each camera per round, the round's frames through ``TrackerGroup.step`` together, so that the
clips of cameras due at the same time share one network call (one encoder batch). Cameras of one
rate publish at nearly the same instant, yet their frames reach the queues one by one: a round
that makes a camera's clip due waits up to GATHER_SEC for the frame of each other streaming
camera whose clip is one frame short and whose next frame is expected by then (from the
intervals between its frames' arrivals), so that a few milliseconds of arrival do not split
clips that are due together, while a camera of a slower rate is not waited for.

No ROS here: the node gives the worker a `publish(results)` callable and a logger
(``error/warning/info/debug`` taking a message).
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stemseg_core.inference.tracker_group import GroupTracker, StreamFrame
from stemseg_ros.frame_queue import FlushRequest, Frame, FrameQueue
from stemseg_ros.memory import release_memory
from stemseg_ros.worker_stats import Stats

#: Seconds the worker waits for a frame before it checks the idle-flush timer.
POLL_SEC = 0.05
#: Default of the node's idle_flush_sec: a pause after which the partial clip is finalised and
#: the clip buffers' memory given back.
DEFAULT_IDLE_FLUSH_SEC = 1.0
#: Seconds a round with a due clip waits for the frames that make other cameras' clips due.
GATHER_SEC = 0.03
#: A camera without a frame for this long is not waited for.
STALE_SEC = 1.0
#: Weight of the newest interval in a camera's smoothed interval between frames.
PERIOD_WEIGHT = 0.3


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
    dropped_seen: int = 0  # the tracker's frames_dropped already counted in stats.dropped
    last_received: float | None = None  # when the callback got the lane's last frame
    period: float | None = None  # smoothed seconds between its frames' arrivals

    def arrived(self, received: float) -> None:
        """Note a frame's arrival time (Frame.received) for the expected next one."""
        if self.last_received is not None:
            dt = max(received - self.last_received, 0.0)
            self.period = dt if self.period is None else (
                (1 - PERIOD_WEIGHT) * self.period + PERIOD_WEIGHT * dt)
        self.last_received = received

    def expected_by(self, t: float) -> bool:
        """Whether its next frame should have arrived by monotonic time `t` (True while its
        rate is unknown)."""
        return (self.period is None or self.last_received is None
                or self.last_received + self.period <= t)


def one_short(lane: Lane) -> bool:
    """Whether the lane's next frame makes its clip due."""
    tr = lane.session.tracker
    return tr.buffered == tr.clip_length - 1


class Worker:
    """Runs stream sessions (StreamSession) on the frames of their queues in one thread.

    One lane per camera (:meth:`add_lane`; the constructor's is the first, named ""): the
    thread takes the next waiting item of each lane in turn (round robin), so cameras due
    together share the network evenly; the lanes of a TrackerGroup in rounds whose clips run in
    one network call (module doc). Results go to the lane's `publish(results)` in order. A
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
        #: the TrackerGroup of the lanes' sessions (served in rounds), or None
        self.group: Any = None
        self.thread = threading.Thread(target=self._run, name="stemseg-worker", daemon=True)
        self.add_lane(name, session, queue, stats, publish)

    def add_lane(self, name: str, session: Any, queue: FrameQueue, stats: Stats,
                 publish: Callable[[list[Any]], None]) -> Lane:
        """Another camera (before start)."""
        queue.bell = self._bell
        if isinstance(session.tracker, GroupTracker):
            self.group = session.tracker.group
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
            if self.group is not None:
                self._round()
                continue
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
        tracker = lane.session.tracker
        pending = tracker.pending
        lane.session.drop()
        total = getattr(tracker, "frames_dropped", None)  # a clip fails after dropping its frames
        if isinstance(total, int):
            lost, lane.dropped_seen = max(total - lane.dropped_seen, 0), total
        else:  # a stand-in tracker without the counter
            lost = pending
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
                           f"{''.join(traceback.format_exception(e))}")

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

    def _take_round(self) -> list[tuple[Lane, Any]]:
        """One waiting item of each lane (lanes in turn) and, where a frame makes its lane's
        clip due, the frames of the streaming lanes one frame short of theirs that arrive
        within GATHER_SEC (module doc); [] after POLL_SEC without any item."""
        self._bell.clear()
        n = len(self.lanes)
        order = [self.lanes[(self._turn + j) % n] for j in range(n)]
        items = [(lane, item) for lane in order if (item := lane.queue.get(0)) is not None]
        if not items:
            self._bell.wait(POLL_SEC)
            return []
        self._turn = (self._turn + 1) % n
        if not any(one_short(lane) for lane, i in items if not isinstance(i, FlushRequest)):
            return items
        now, taken = time.monotonic(), {lane.name for lane, _ in items}
        wanted = [lane for lane in order if lane.name not in taken and one_short(lane)
                  and not lane.idle and now - lane.last_frame_time < STALE_SEC
                  and lane.expected_by(now + GATHER_SEC)]
        deadline = now + GATHER_SEC
        while wanted and time.monotonic() < deadline:
            self._bell.wait(max(0.0, deadline - time.monotonic()))
            self._bell.clear()
            for lane in list(wanted):
                item = lane.queue.get(0)
                if item is not None:
                    items.append((lane, item))
                    wanted.remove(lane)
        return items

    def _round(self) -> None:
        """One round of the group's lanes: their frames in one step, then the flush requests
        (one item per lane, so each lane's order is kept); idle flushes when none came."""
        try:
            items = self._take_round()
        except Exception as e:  # noqa: BLE001 - the worker thread must not end
            self._failed_guarded(self.lanes[0], e)
            return
        if not items:
            for each in self.lanes:
                try:
                    self._maybe_idle_flush(each)
                except Exception as e:  # noqa: BLE001 - the worker must survive any one clip
                    self._failed_guarded(each, e)
        frames = [(lane, f) for lane, f in items if not isinstance(f, FlushRequest)]
        if frames:
            try:
                self._step(frames)
            except Exception as e:  # noqa: BLE001 - the worker thread must not end
                for lane, _ in frames:
                    self._failed_guarded(lane, e)
        for lane, item in items:
            if isinstance(item, FlushRequest):
                try:
                    item.published = self._flush(lane, "flush requested")
                except Exception as e:  # noqa: BLE001
                    self._failed_guarded(lane, e)
                finally:
                    item.finish()

    def _step(self, frames: list[tuple[Lane, Frame]]) -> None:
        """One frame of each of these lanes through ``TrackerGroup.step`` (their due clips in
        one network call); per lane its counters, results and failure as _process has them."""
        self._apply_thresholds()
        batch, before = [], {}
        for lane, frame in frames:
            lane.last_frame_time, lane.idle = time.monotonic(), False
            lane.arrived(frame.received)
            size = frame.full_size or frame.model_input().shape[:2]
            try:
                if lane.session.needs_build(size):
                    self._warm_up(lane.session, size)
            except Exception as e:  # noqa: BLE001 - the other lanes go on
                lane.stats.add(dropped=1)  # this frame: never pushed
                self._failed_guarded(lane, e)
                continue
            before[lane.name] = (lane, lane.session.resets, lane.session.shapes.resized)
            batch.append(StreamFrame(lane.name, frame.model_input(), frame.stamp_ns, frame,
                                     frame.prev_stamp_ns, frame.full_size))
        try:
            steps = self.group.step(batch)
        except Exception as e:  # noqa: BLE001 - step isolates streams; this is a last resort
            for lane, _, _ in before.values():
                self._failed_guarded(lane, e)
            return
        for name, st in steps.items():
            lane, resets, resized = before[name]
            error = st.error
            try:  # one camera's publishing failure is its own
                lane.stats.add(tracker_sec=st.seconds, resets=lane.session.resets - resets,
                               frames_resized=lane.session.shapes.resized - resized,
                               clips_batched=int(st.batch > 1))
                self._publish(lane, st.results, st.seconds)
            except Exception as e:  # noqa: BLE001
                error = error or e
            if error is not None:
                self._failed_guarded(lane, error)

    def _process(self, lane: Lane, frame: Frame) -> None:
        self._apply_thresholds()
        lane.last_frame_time = time.monotonic()
        lane.idle = False
        session = lane.session
        size = frame.full_size or frame.model_input().shape[:2]
        if getattr(session, "needs_build", lambda _: False)(size):
            try:
                self._warm_up(session, size)
            except Exception:
                lane.stats.add(dropped=1)  # this frame: never pushed
                raise
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
