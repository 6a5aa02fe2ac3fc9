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

The model input shapes of a session are bounded (:class:`ShapeBudget`): the training geometry
(what warm-up built) plus at most ``MAX_EXTRA_SHAPES`` more, taken by the first image sizes that
need them. Every new padded shape is a backend build (seconds, an engine in the cache), so a
stream whose size changes every frame (a faulty or hostile publisher) would otherwise stall the
tracker and fill the disk; a frame whose shape is not in the set is resized into the closest one
instead (logged for the first sizes, counted in ``ShapeBudget.resized``). Results always come
back at the frame's own size (``push(..., size=)``: the camera's size when the caller decoded the
image smaller); the tracker makes its masks at that size directly (``StreamingTracker.push(...,
size=)``), so a reduced decode costs no whole-frame resize of every mask.

:class:`FrameSkipper` keeps frames evenly spaced at most ``max_rate`` per second of stamp time,
for a model slower than the camera: skipping evenly keeps clips short in time, where a full queue
dropping its oldest frames leaves bursts and holes.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from stemseg_core.inference.preprocess import Geometry, geometry
from stemseg_core.inference.types import FrameResult

log = logging.getLogger(__name__)

#: Share of the skipping period by which a frame may come early and still be kept (camera jitter).
SKIP_TOLERANCE = 0.1
#: Model input shapes a session may add to the training geometry (each is a backend build).
MAX_EXTRA_SHAPES = 2
#: Image sizes whose resizing into another shape is logged (the rest are only counted).
LOGGED_SIZES = 8


class ShapeBudget:
    """The bounded set of padded model input shapes (Hp, Wp) a stream session may use.

    Starts with the training geometry ``cfg.data.height x width`` (what ``warmup`` builds) as the
    tracker resizes it (``cfg.input.min_side``/``max_side``); the first ``max_extra`` other shapes
    that frames need are added; after that a frame is resized to the closest shape's model size
    (aspect ratio first, then area) before the tracker sees it. Each shape is stored with the
    resized size (nh, nw) that produces it; an image of exactly that size is not resized again by
    the tracker (its shorter or longer side is the limit already), so it lands on that shape.
    """

    def __init__(self, cfg: Any, max_extra: int = MAX_EXTRA_SHAPES) -> None:
        inp = getattr(cfg, "input", None)
        self.min_side = int(getattr(inp, "min_side", 0) or 0)
        self.max_side = int(getattr(inp, "max_side", 0) or 0)
        self.shapes: dict[tuple[int, int], tuple[int, int]] = {}  # (Hp, Wp) -> (nh, nw)
        data = getattr(cfg, "data", None)
        th, tw = int(getattr(data, "height", 0) or 0), int(getattr(data, "width", 0) or 0)
        if th > 0 and tw > 0:
            g = self.geometry(th, tw)
            self.shapes[g.padded_size] = g.resized_size
        self.limit = len(self.shapes) + max(0, int(max_extra))
        self.resized = 0  # frames resized into another shape
        self._logged: set[tuple[int, int]] = set()

    def geometry(self, h: int, w: int) -> Geometry:
        return geometry(h, w, self.min_side, self.max_side)

    def fit(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """`image` as the tracker should get it, for a frame whose camera size is `size` (H, W)
        (`image` may be smaller: decoded at reduced scale). Unchanged when its shape is in the
        set (or can still join it); else resized to a shape of the set."""
        natural = self.geometry(*size)
        if natural.padded_size not in self.shapes:
            if len(self.shapes) < self.limit:
                self.shapes[natural.padded_size] = natural.resized_size
            else:
                target = self.closest(natural)
                self.resized += 1
                self._log(size, natural, target)
                return _resize(image, self.shapes[target])
        h, w = image.shape[:2]
        if (h, w) != tuple(size) and self.geometry(h, w).padded_size != natural.padded_size:
            return _resize(image, natural.resized_size)  # a reduced decode rounding elsewhere
        return image

    def closest(self, g: Geometry) -> tuple[int, int]:
        """The kept padded shape (Hp, Wp) nearest to ``g``: aspect first, then area."""
        nh, nw = g.resized_size

        def distance(padded: tuple[int, int]) -> tuple[float, float]:
            sh, sw = self.shapes[padded]
            return (abs(math.log((nw / nh) / (sw / sh))), abs(math.log(nh * nw / (sh * sw))))

        return min(self.shapes, key=distance)

    def _log(self, size: tuple[int, int], natural: Geometry, target: tuple[int, int]) -> None:
        if tuple(size) in self._logged or len(self._logged) >= LOGGED_SIZES:
            return
        self._logged.add(tuple(size))
        (h, w), (hp, wp), (th, tw) = size, natural.padded_size, self.shapes[target]
        have = ", ".join(f"{b}x{a}" for a, b in self.shapes)
        more = "; further sizes are only counted" if len(self._logged) == LOGGED_SIZES else ""
        log.warning(f"{w}x{h} images would need a new model input shape {wp}x{hp}, but this "
                    f"stream has used its {self.limit} ({have}): resizing them to {tw}x{th} "
                    f"instead of building another backend (results are mapped back to "
                    f"{w}x{h}){more}")


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> size (h, w): area averaging when shrinking, bilinear when growing."""
    h, w = size
    shrink = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def results_at(results: list[FrameResult], size: tuple[int, int] | None) -> list[FrameResult]:
    """`results` with masks of `size` (H, W) (bilinear, p > 0.5); those already of that size
    are returned as they are."""
    if size is None:
        return results
    h, w = size
    out = []
    for r in results:
        if tuple(r.image_size) == (h, w):
            out.append(r)
            continue
        insts = [dataclasses.replace(i, mask=cv2.resize(
            np.asarray(i.mask, np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) > 127)
            for i in r.instances]
        out.append(dataclasses.replace(r, image_size=(h, w), instances=insts))
    return out


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
        self.shapes = ShapeBudget(getattr(tracker, "cfg", None))
        #: the tracker takes push(..., size=) (StreamingTracker does; stand-ins may not)
        self._push_sized = "size" in inspect.signature(tracker.push).parameters

    def needs_build(self, size: tuple[int, int]) -> bool:
        """Whether frames of camera size `size` (H, W) would make the tracker build a backend
        (a model input shape without a runner yet)."""
        shapes = getattr(self.tracker, "runner_shapes", None)
        return shapes is not None and (3, *self._shape_for(size)[0]) not in shapes

    def prepare(self, size: tuple[int, int]) -> bool:
        """Build (or load) the tracker's engines for frames of camera size `size` (H, W) now,
        with every clip length (``StreamingTracker.warmup``), the shape taken into the budget;
        True when something was built. The stream's state is not touched."""
        if not self.needs_build(size):
            return False
        padded, (nh, nw) = self._shape_for(size)
        self.shapes.shapes.setdefault(padded, (nh, nw))
        self.tracker.warmup(nh, nw, every_length=True)
        return True

    def _shape_for(self, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """The (Hp, Wp) shape frames of `size` get (as ShapeBudget.fit) and its model size."""
        b = self.shapes
        natural = b.geometry(int(size[0]), int(size[1]))
        if natural.padded_size in b.shapes or len(b.shapes) < b.limit:
            return natural.padded_size, natural.resized_size
        target = b.closest(natural)
        return target, b.shapes[target]

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
             prev_stamp_ns: int | None = None, size: tuple[int, int] | None = None
             ) -> list[FrameResult]:
        """Push one (H, W, 3) uint8 RGB frame stamped `stamp_ns` (FrameResult.stamp = `meta`).

        `prev_stamp_ns`: stamp of the frame that arrived before this one, pushed or not (None:
        the last pushed frame). `size`: the frame's own (H, W) when `image` is a smaller decode
        of it (None: the image's size); results come at that size. Returns the frames that
        became final, in order: those of the old sequence first when this frame starts a new
        one.
        """
        out, image, size = self._before(image, stamp_ns, prev_stamp_ns, size)
        if self._push_sized:  # masks made at `size` once, per instance in its box
            out += self.tracker.push(image, meta, size=size)
        else:
            out += results_at(self.tracker.push(image, meta), size)
        self._last_size, self._last_stamp = size, int(stamp_ns)
        return out

    def stage(self, image: np.ndarray, stamp_ns: int, meta: Any = None,
              prev_stamp_ns: int | None = None, size: tuple[int, int] | None = None
              ) -> tuple[list[FrameResult], bool]:
        """As push, but a clip the frame makes due is left for the caller to run
        (``tracker.add_frame``; then ``tracker.finish_clip``, see tracker_group.py): the
        results of the old sequence where this frame starts a new one, and whether a clip is
        due now."""
        out, image, size = self._before(image, stamp_ns, prev_stamp_ns, size)
        due = self.tracker.add_frame(image, meta, size=size)
        self._last_size, self._last_stamp = size, int(stamp_ns)
        return out, due

    def _before(self, image: np.ndarray, stamp_ns: int, prev_stamp_ns: int | None,
                size: tuple[int, int] | None
                ) -> tuple[list[FrameResult], np.ndarray, tuple[int, int]]:
        """The stream policy before a frame: (results of a restart, the image as the tracker
        gets it, the results' size)."""
        out: list[FrameResult] = []
        size = (int(size[0]), int(size[1])) if size else (int(image.shape[0]),
                                                          int(image.shape[1]))
        brk = self.check(size, stamp_ns, prev_stamp_ns)
        if brk is not None:
            (log.info if brk.kind == "gap" else log.warning)(brk.message)
            out += self.restart()
        return out, self.shapes.fit(image, size), size

    def flush(self) -> list[FrameResult]:
        """Finalise the frames buffered so far; the sequence goes on."""
        return results_at(self.tracker.flush(), self._last_size) if self.tracker.pending else []

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
