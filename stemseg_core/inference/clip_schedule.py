"""The tracker's clip schedule: which buffered frames form the next clip and which are new.

Frames are buffered until ``clip_length`` are in (or a flush); a clip is the whole buffer, its
first ``n_shared`` frames overlap the previous clip (stitching links IDs there) and the rest
are new (their results are output). After a clip only the last ``clip_overlap`` frames stay,
so memory is flat.
"""
from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np


class BufferedFrame(NamedTuple):
    """One pushed frame as the tracker keeps it until its clip has run."""

    #: (3, Hp, Wp) float32 model input (0..255, padded).
    model_input: np.ndarray
    #: The caller's stamp, returned with the frame's result.
    stamp: Any
    #: Index of the frame in the stream (0-based, counts across flushes).
    index: int
    #: (h, w, 3) RGB image at the mask refinement's size when refinement is on, else None.
    refinement_image: np.ndarray | None


class ClipSchedule:
    """The frame buffer of one stream: frames waiting for a clip and the overlap kept."""

    def __init__(self) -> None:
        self._frames: deque[BufferedFrame] = deque()
        self.new = 0  # buffered frames not output yet (always the last ones of the buffer)

    def add(self, frame: BufferedFrame) -> None:
        self._frames.append(frame)
        self.new += 1

    def __len__(self) -> int:
        return len(self._frames)

    def clip(self) -> tuple[list[BufferedFrame], int]:
        """The next clip's frames and how many of them (the first) the last clip had."""
        frames = list(self._frames)
        return frames, len(frames) - self.new

    def keep_overlap(self, overlap: int) -> None:
        """After a clip ran: keep its last ``overlap`` frames for the next one."""
        while len(self._frames) > overlap:
            self._frames.popleft()
        self.new = 0

    def clear(self) -> None:
        self._frames.clear()
        self.new = 0


__all__ = ["BufferedFrame", "ClipSchedule"]
