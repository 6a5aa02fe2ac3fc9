"""Stream policy of a live camera: when a stream starts a new track sequence, which frames to skip.

:class:`StreamSession` wraps a :class:`StreamingTracker` for a stream whose frames carry time
stamps (the ROS node; `stemseg infer` pushes each sequence as one stream). Before each frame it
checks, in this order:

- the image size changed -> the running clip is finalised, a new track sequence starts;
- the stamp went back in time (a bag restarted) -> the same;
- the stamp is more than ``gap_reset_sec`` after the previous *incoming* frame (0 = never) -> the
  same. The previous incoming frame is the caller's to give (``prev_stamp_ns``): frames that the
  caller itself skipped or dropped never count as a gap, only gaps in the camera's stamps do.

A new sequence keeps counting track IDs (``StreamingTracker.reset(keep_ids=True)``), so an ID is
never reused within one session.

:class:`FrameSkipper` keeps frames evenly spaced at most ``max_rate`` per second of stamp time,
for a model slower than the camera: skipping evenly keeps clips short in time, where a full queue
dropping its oldest frames leaves bursts and holes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from stemseg_core.inference.types import FrameResult

log = logging.getLogger(__name__)

#: Share of the skipping period by which a frame may come early and still be kept (camera jitter).
SKIP_TOLERANCE = 0.1


@dataclass(frozen=True)
class StreamBreak:
    """Why a stream starts a new track sequence before a frame."""

    kind: str  # "size" | "back_in_time" | "gap"
    message: str


class StreamSession:
    """A StreamingTracker fed one live stream, with the resets of the stream policy above.

    Not thread-safe (like the tracker): push/flush/restart from one thread.
    """

    def __init__(self, tracker: Any, gap_reset_sec: float = 0.0) -> None:
        self.tracker = tracker
        self.gap_reset_sec = float(gap_reset_sec)
        self.resets = 0  # new track sequences started by the policy or restart()
        self._last_size: tuple[int, int] | None = None
        self._last_stamp: int | None = None

    def check(self, size: tuple[int, int], stamp_ns: int,
              prev_stamp_ns: int | None = None) -> StreamBreak | None:
        """The reason to start a new sequence before a frame of `size` (H, W) at `stamp_ns`."""
        if self._last_size is not None and size != self._last_size:
            (h0, w0), (h1, w1) = self._last_size, size
            return StreamBreak("size", f"image size changed from {w0}x{h0} to {w1}x{h1}: "
                                       f"finishing the running clip, new track sequence")
        last = self._last_stamp
        if last is not None and stamp_ns < last:
            return StreamBreak("back_in_time", f"image stamp jumped back in time by "
                                               f"{(last - stamp_ns) / 1e9:.3f} s (bag restarted?):"
                                               f" new track sequence")
        ref = prev_stamp_ns if prev_stamp_ns is not None else last
        if (ref is not None and self._last_stamp is not None and self.gap_reset_sec > 0
                and stamp_ns - ref > self.gap_reset_sec * 1e9):
            return StreamBreak("gap", f"gap of {(stamp_ns - ref) / 1e9:.3f} s between image "
                                      f"stamps (> gap_reset_sec={self.gap_reset_sec}): new "
                                      f"track sequence")
        return None

    def push(self, image: np.ndarray, stamp_ns: int, meta: Any = None,
             prev_stamp_ns: int | None = None) -> list[FrameResult]:
        """Push one (H, W, 3) uint8 RGB frame stamped `stamp_ns` (FrameResult.stamp = `meta`).

        `prev_stamp_ns`: stamp of the frame that arrived before this one, pushed or not (None:
        the last pushed frame). Returns the frames that became final, in order: those of the
        old sequence first when this frame starts a new one.
        """
        out: list[FrameResult] = []
        size = (int(image.shape[0]), int(image.shape[1]))
        brk = self.check(size, stamp_ns, prev_stamp_ns)
        if brk is not None:
            (log.info if brk.kind == "gap" else log.warning)(brk.message)
            out += self.restart()
        out += self.tracker.push(image, meta)
        self._last_size, self._last_stamp = size, int(stamp_ns)
        return out

    def flush(self) -> list[FrameResult]:
        """Finalise the frames buffered so far; the sequence goes on."""
        return self.tracker.flush() if self.tracker.pending else []

    def restart(self) -> list[FrameResult]:
        """Finalise the buffered frames, then start a new track sequence (IDs go on)."""
        out = self.flush()
        self.drop()
        return out

    def drop(self) -> None:
        """Start a new track sequence without finalising the buffered frames (after an error)."""
        self.tracker.reset(keep_ids=True)
        self._last_size = self._last_stamp = None
        self.resets += 1


class FrameSkipper:
    """Decides per incoming stamp whether to keep a frame, at most `max_rate` kept per second,
    evenly spaced in stamp time. max_rate <= 0 keeps every frame."""

    def __init__(self) -> None:
        self._due: float | None = None  # stamp (ns) of the next frame to keep (one period on)

    def keep(self, stamp_ns: int, max_rate: float) -> bool:
        if max_rate <= 0:
            self._due = None
            return True
        period = 1e9 / max_rate
        due = self._due
        if due is None or stamp_ns < due - period or stamp_ns > due + period:
            self._due = stamp_ns + period  # first frame, back in time, or a pause: start over
            return True
        if stamp_ns >= due - SKIP_TOLERANCE * period:
            self._due = due + period  # on the grid, so the kept frames stay evenly spaced
            return True
        return False


#: Factor by which the model input's aspect ratio may differ from the training crops' before
#: :func:`training_geometry_warning` speaks up.
GEOMETRY_TOLERANCE = 1.5


def training_geometry_warning(cfg: Any, height: int, width: int) -> str | None:
    """A warning when a (height, width) image reaches the model with an aspect ratio far (more
    than GEOMETRY_TOLERANCE) from the cfg.data.height x width crops it was trained on; None when
    it is close or the training size is unknown. (Crops are cut from full frames, so a larger
    image of the same aspect is fine; the object scale cannot be told from the size.)"""
    from stemseg_core.inference.preprocess import resized_size

    th, tw = int(cfg.data.height), int(cfg.data.width)
    if th <= 0 or tw <= 0:
        return None
    nh, nw = resized_size(height, width, cfg.input.min_side, cfg.input.max_side)
    if 1 / GEOMETRY_TOLERANCE <= (nw / nh) / (tw / th) <= GEOMETRY_TOLERANCE:
        return None
    band = min(height, round(width * th / tw))
    return (f"the model was trained on {tw}x{th} crops (aspect {tw / th:.2f}); this {width}x"
            f"{height} input reaches it as {nw}x{nh} (aspect {nw / nh:.2f}): expect missed and "
            f"false instances. Crop a band of the training aspect with input_roi, e.g. "
            f"[0, {(height - band) // 2}, {width}, {band}], and mind the object scale (input_width"
            f"/input_height scale the model input)")
