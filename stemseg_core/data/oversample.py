"""Class-aware clip oversampling: frame weights from the small instances of one class.

Not in the paper. Small, distant pedestrians are a minority of the training pixels and the class
the model misses most; drawing clips more often where they are gives them more gradient without
changing the loss. A clip starting at frame t is drawn with weight ``1 + weight * k_t``, k_t =
instances of the class in frame t smaller than ``max_area`` pixels at the training size (a
source frame's areas are scaled by the resize factor squared). Areas come from the reader's
``Sequence.meta["instance_areas"]`` (``t -> [(class_id, pixels)]``; KITTI MOTS txt gives them
from the RLE without decoding) or else from the decoded annotations.
"""
from __future__ import annotations

import numpy as np

from stemseg_core.data.sequence import Sequence


def frame_areas(seq: Sequence, t: int) -> list[tuple[int, int]]:
    """[(class_id, pixels)] of the instances in frame ``t`` of ``seq`` (source resolution)."""
    fn = seq.meta.get("instance_areas")
    if fn is not None:
        return list(fn(t))
    return [(int(cls), int(m.sum())) for _tid, cls, m in seq.annotations(t).instances]


def small_instance_counts(seq: Sequence, class_id: int, max_area: float,
                          area_scale: float = 1.0) -> np.ndarray:
    """(n_frames,) int: instances of ``class_id`` with ``pixels * area_scale < max_area``."""
    return np.array([sum(1 for c, a in frame_areas(seq, t) if c == class_id
                         and 0 < a * area_scale < max_area) for t in range(len(seq))], np.int64)


def start_weights(counts: np.ndarray, weight: float) -> np.ndarray:
    """(n_frames,) float64 sampling weight of a clip starting at each frame: 1 + weight * k."""
    return 1.0 + float(weight) * counts.astype(np.float64)
