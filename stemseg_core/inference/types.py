"""Result types of the streaming tracker, shared by the node, `stemseg infer` and bag eval."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrackedInstance:
    """One tracked object in one frame.

    mask: (H, W) bool at the resolution of the image given to `push` (or its ``size``).
    ``_bbox``: (the mask it belongs to, its tight box) from the tracker, so ``bbox()`` need not
    scan the whole mask; used only while ``mask`` is that very array (a replaced mask is
    scanned).
    """

    track_id: int
    class_id: int
    class_name: str
    score: float
    mask: np.ndarray
    _bbox: tuple[np.ndarray, tuple[int, int, int, int]] | None = field(
        default=None, repr=False, compare=False)

    def bbox(self) -> tuple[int, int, int, int]:
        """(x_offset, y_offset, width, height) of the tight box around the mask; zeros if empty."""
        if self._bbox is not None and self._bbox[0] is self.mask:
            return self._bbox[1]
        ys = np.flatnonzero(self.mask.any(axis=1))
        xs = np.flatnonzero(self.mask.any(axis=0))
        if len(xs) == 0:
            return (0, 0, 0, 0)
        return (int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1))


@dataclass
class FrameResult:
    """All instances of one input frame, returned once final.

    index: 0-based position of the frame in the stream since the last reset.
    stamp: whatever the caller passed to `push` (ROS time in ns, a frame number, ...).
    image_size: (H, W) of the input image; every mask has this shape.
    """

    index: int
    stamp: Any
    image_size: tuple[int, int]
    instances: list[TrackedInstance] = field(default_factory=list)
