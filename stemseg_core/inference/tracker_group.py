"""Several named camera streams on one network: :class:`TrackerGroup`.

Each stream has its own tracker state (``StreamingTracker.sibling()``: buffer, stitcher, track
IDs), seen through a :class:`GroupTracker`, and its own StreamSession (the stream policy of
stream_policy.py); all share one
loaded model and its backend runners (engines built once, for every camera). Call everything
from one thread (the node's worker): the trackers are not thread-safe and share the runners.

Track IDs are unique across the group by interleaving: the k-th stream (k = 0..N-1) of N
publishes its tracker's ID ``local`` as ``(local - 1) * N + k + 1``. Stream k's IDs are thus
k+1, k+1+N, k+1+2N, ...; one stream (N = 1) keeps its tracker's IDs unchanged, and
:meth:`TrackerGroup.camera_of` tells any published ID's stream. IDs stay unique as long as the
tracker never reuses an ID, which it does not within a session (``reset(keep_ids=True)``).

:meth:`TrackerGroup.step` takes one frame each of several streams and runs the clips they make
due through the network together (batched_clips.py: one encoder call for all their new frames,
then each stream's own decoding and post-processing), with the results of pushing them in turn.

A runner keeps the features of its last frames (backends/runner.py, 2T by default: one clip and
its mirror) so that overlapping clips encode each frame once. N streams take turns on the same
runner, so the group widens every runner it sees to N times that, or each stream's overlap
frames would have been pushed out by the others' and be encoded again.
"""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from stemseg_core.inference.batched_clips import run_due_clips
from stemseg_core.inference.stream_policy import StreamSession
from stemseg_core.inference.types import FrameResult

#: Most streams one group serves: every stream adds a tracker state and N x 2T kept frame
#: features per runner, and on one device the streams share one network's time; a robot's 4-8
#: cameras fit, more belong on a second process or device.
MAX_STREAMS = 8
#: A stream name is one ROS name token (it becomes part of topic names, e.g. ``front/image``).
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def check_stream_names(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple; ValueError naming the bad value and the fix: empty, more than
    MAX_STREAMS, not a name token (a letter, then letters, digits, '_'; at most 63), or a
    duplicate."""
    names = tuple(names)
    if not names:
        raise ValueError("no stream names given; name at least one, e.g. ['front']")
    if len(names) > MAX_STREAMS:
        raise ValueError(f"{len(names)} streams given, at most {MAX_STREAMS}: they all share one "
                         f"network's time and memory; run another process for the rest")
    for name in names:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"stream name {str(name)[:70]!r} is not a name token: use a letter, "
                             f"then letters, digits or '_' (at most 63), e.g. 'front_left'")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"stream name(s) {dup} given more than once; each camera needs its own")
    return names


class StreamFrame(NamedTuple):
    """One frame of stream ``name`` for :meth:`TrackerGroup.step` (the rest as
    ``StreamSession.push`` takes them)."""

    name: str
    image: np.ndarray
    stamp_ns: int
    meta: Any = None
    prev_stamp_ns: int | None = None
    size: tuple[int, int] | None = None


@dataclasses.dataclass
class StreamStep:
    """What :meth:`TrackerGroup.step` did for one stream."""

    #: the frames that became final, in order, with group-wide track IDs
    results: list[FrameResult]
    #: what failed its frame or clip (the clip's frames dropped, as a failing push drops them)
    error: Exception | None = None
    #: seconds of its own work plus its share of the network call
    seconds: float = 0.0
    #: clips in the network call that ran its clip (0: no clip ran; 2 or more: batched)
    batch: int = 0


class GroupTracker:
    """Stream `index`'s view of its tracker: ``push``/``flush`` return group-wide track IDs and
    keep the shared runner wide enough; everything else is the tracker's own (attributes are
    read from and set on it)."""

    def __init__(self, group: TrackerGroup, index: int, tracker: Any) -> None:
        object.__setattr__(self, "_group", group)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "inner", tracker)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def group(self) -> TrackerGroup:
        """The group of this stream (its ``step`` runs several streams' clips at once)."""
        return self._group

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)

    def push(self, image: np.ndarray, stamp: Any = None,
             size: tuple[int, int] | None = None) -> list[FrameResult]:
        out = (self.inner.push(image, stamp, size=size) if size is not None
               else self.inner.push(image, stamp))
        self._group.widen(getattr(self.inner, "runner", None))
        return self._group.to_global(self.index, out)

    def flush(self) -> list[FrameResult]:
        return self._group.to_global(self.index, self.inner.flush())

    def warmup(self, *args: Any, **kwargs: Any) -> float:
        sec = self.inner.warmup(*args, **kwargs)
        self._group.widen(getattr(self.inner, "runner", None))
        return sec


class TrackerGroup:
    """N named streams of one tracker's network; ``sessions[name]`` is stream `name`'s
    StreamSession (its tracker a GroupTracker: results carry group-wide IDs)."""

    def __init__(self, tracker: Any, names: Sequence[str], gap_reset_sec: float = 0.0) -> None:
        self.names = check_stream_names(names)
        self.tracker = tracker
        self.sessions: dict[str, StreamSession] = {}
        for k, name in enumerate(self.names):
            tr = GroupTracker(self, k, tracker if k == 0 else tracker.sibling())
            self.sessions[name] = StreamSession(tr, gap_reset_sec)
        self.widen(getattr(tracker, "runner", None))

    def __len__(self) -> int:
        return len(self.names)

    def global_id(self, index: int, local_id: int) -> int:
        """Stream `index`'s tracker ID -> the ID it is published with."""
        return (int(local_id) - 1) * len(self.names) + index + 1

    def camera_of(self, track_id: int) -> tuple[str, int]:
        """A published ID -> (stream name, that stream's tracker ID)."""
        k, q = (int(track_id) - 1) % len(self.names), (int(track_id) - 1) // len(self.names)
        return self.names[k], q + 1

    def to_global(self, index: int, results: list[FrameResult]) -> list[FrameResult]:
        if len(self.names) == 1:
            return results
        return [dataclasses.replace(r, instances=[
            dataclasses.replace(i, track_id=self.global_id(index, i.track_id))
            for i in r.instances]) for r in results]

    def step(self, frames: Sequence[StreamFrame]) -> dict[str, StreamStep]:
        """One frame each of some streams (at most one per stream), as if each were pushed
        (``StreamSession.push``) in turn, except that the clips they make due go through the
        network together: one encoder call for all their new frames (batched_clips.py).
        Returns a StreamStep per stream given; one stream's failure leaves the others'
        results."""
        steps: dict[str, StreamStep] = {}
        due: list[str] = []
        for f in frames:
            if f.name in steps:
                raise ValueError(f"stream {f.name!r} given twice in one step: its frames go "
                                 f"in order, one per step")
            t0 = time.perf_counter()
            try:
                results, is_due = self.sessions[f.name].stage(
                    f.image, f.stamp_ns, f.meta, f.prev_stamp_ns, size=f.size)
                steps[f.name] = StreamStep(self.to_global(self.names.index(f.name), results))
            except Exception as e:  # noqa: BLE001 - the other streams go on
                steps[f.name], is_due = StreamStep([], e), False
            steps[f.name].seconds = time.perf_counter() - t0
            if is_due:
                due.append(f.name)
        trackers = [self.sessions[n].tracker.inner for n in due]
        for name, tr, (out, share, n) in zip(due, trackers,
                                             run_due_clips(trackers, self.widen)):
            st, t0 = steps[name], time.perf_counter()
            st.batch = n
            if isinstance(out, Exception):
                tr.drop_clip()
                st.error = out
            else:
                try:
                    st.results += self.to_global(self.names.index(name),
                                                 tr.finish_clip(out, share))
                except Exception as e:  # noqa: BLE001 - the other streams go on
                    st.error = e
            st.seconds += share + time.perf_counter() - t0
        return steps

    def widen(self, runner: Any) -> None:
        """Keep N times the runner's own feature capacity (see the module docstring)."""
        base = getattr(runner, "base_capacity", None)  # None: no runner, or one that keeps none
        if base is not None:
            runner.capacity = max(runner.capacity, base * len(self.names))

    def set_thresholds(self, **values: Any) -> None:
        """The same live thresholds on every stream's tracker (all or nothing per tracker)."""
        for s in self.sessions.values():
            s.tracker.set_thresholds(**values)


__all__ = ["MAX_STREAMS", "GroupTracker", "StreamFrame", "StreamStep", "TrackerGroup",
           "check_stream_names"]
