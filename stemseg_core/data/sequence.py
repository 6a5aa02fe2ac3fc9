"""The in-memory video structure every data reader returns.

A :class:`Sequence` has ``image_paths`` (one per frame), the image size, and
``annotations(t)`` giving a :class:`FrameAnnotation`: a list of :class:`Instance`
``(track_id, class_id, mask)`` with ``mask`` (H, W) bool, plus an ``ignore`` (H, W) bool mask.
Annotations are decoded lazily.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np


class Instance(NamedTuple):
    track_id: int
    class_id: int
    mask: np.ndarray  # (H, W) bool


@dataclass
class FrameAnnotation:
    instances: list[Instance]
    ignore: np.ndarray  # (H, W) bool


@dataclass
class Sequence:
    """One video: frame image paths plus a lazy per-frame annotation loader."""

    name: str
    image_paths: list[str]
    height: int
    width: int
    annotation_fn: Callable[[int], FrameAnnotation] | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def num_frames(self) -> int:
        return len(self.image_paths)

    def annotations(self, t: int) -> FrameAnnotation:
        """Instances and ignore mask of frame ``t`` (empty when the frame has no annotation)."""
        if self.annotation_fn is None:
            return FrameAnnotation([], np.zeros((self.height, self.width), bool))
        return self.annotation_fn(t)

    def load_image(self, t: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of frame ``t``."""
        return read_rgb(self.image_paths[t])


def read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(img[..., ::-1])


__all__ = ["FrameAnnotation", "Instance", "Sequence", "read_rgb"]
