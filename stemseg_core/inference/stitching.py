"""Linking the instances of consecutive clips into tracks (paper sec. 3.3, "Video clip stitching").

Clips of length T overlap by Tc frames. When a clip arrives, its instances' masks over the frames
it shares with the previous clip are compared with the previous clip's instances over those same
frames: cost = 1 - IoU (IoU summed over all shared frames, i.e. of the two mask tubes restricted to
the overlap), solved with ``scipy.optimize.linear_sum_assignment``. A pair with IoU below
``min_iou`` is not linked. A new instance that is not linked gets a fresh track ID from a counter
that starts at 1 and never goes back (until :meth:`ClipStitcher.reset`), so an ID is never reused.
With Tc = 0 nothing is linked: every instance of every clip starts a new track.

Which clip's masks are output for the overlap frames is the caller's choice; the streaming tracker
outputs every frame from the *first* clip that contains it (lowest latency: a frame is final as
soon as one clip has seen it), and later clips only use those frames to link IDs. The stitcher
always compares the new clip with the previous clip's own masks of the shared frames.

Masks are passed as label maps: (L, H, W) integers, 0 = no instance, k = instance k - 1, so the
masks of one frame are disjoint by construction and all IoUs come from one joint histogram
(O(pixels), independent of the number of instances). Only the last Tc frames of the previous
clip are kept, so memory does not grow with the stream.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_from_labels(prev: np.ndarray, num_prev: int, new: np.ndarray,
                    num_new: int) -> np.ndarray:
    """(num_prev, num_new) IoU between the tubes of two label maps of equal shape.

    Labels: 0 = none, k = instance k - 1; labels above num_* are not allowed.
    """
    if prev.shape != new.shape:
        raise ValueError(f"label maps differ in shape: {prev.shape} vs {new.shape}")
    if num_prev == 0 or num_new == 0:
        return np.zeros((num_prev, num_new))
    a = prev.reshape(-1).astype(np.int64)
    b = new.reshape(-1).astype(np.int64)
    joint = np.bincount(a * (num_new + 1) + b, minlength=(num_prev + 1) * (num_new + 1))
    joint = joint[:(num_prev + 1) * (num_new + 1)].reshape(num_prev + 1, num_new + 1)
    inter = joint[1:, 1:].astype(np.float64)
    area_prev = joint[1:, :].sum(axis=1).astype(np.float64)
    area_new = joint[:, 1:].sum(axis=0).astype(np.float64)
    union = area_prev[:, None] + area_new[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return iou


def link_by_iou(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Hungarian matching on cost 1 - IoU; returns the (prev_index, new_index) pairs with
    IoU >= min_iou (and > 0: instances that do not touch are never linked)."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(1.0 - iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols)
            if iou[r, c] >= min_iou and iou[r, c] > 0]


def labels_from_masks(masks: np.ndarray) -> np.ndarray:
    """(N, L, H, W) bool masks, disjoint in every frame -> (L, H, W) int32 label map."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4:
        raise ValueError(f"masks must be (N, L, H, W), got shape {masks.shape}")
    if masks.shape[0] and masks.sum(axis=0).max() > 1:
        raise ValueError("masks overlap; resolve overlaps (e.g. higher score wins) before "
                         "stitching")
    labels = np.zeros(masks.shape[1:], dtype=np.int32)
    for k in range(masks.shape[0]):
        labels[masks[k]] = k + 1
    return labels


class ClipStitcher:
    """Keeps track IDs across overlapping clips.

    ``overlap``: Tc, frames shared by consecutive clips. ``min_iou``: pairs below it are not
    linked (may be changed at any time).
    """

    def __init__(self, overlap: int, min_iou: float = 0.1) -> None:
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.overlap = overlap
        self.min_iou = min_iou
        self.reset()

    def reset(self) -> None:
        """Forget the previous clip; IDs restart at 1."""
        self._next_id = 1
        self._prev_labels: np.ndarray | None = None  # last <= overlap frames of the previous clip
        self._prev_ids: list[int] = []

    @property
    def next_id(self) -> int:
        return self._next_id

    @property
    def stored_frames(self) -> int:
        """How many frames of the previous clip are kept for linking."""
        return 0 if self._prev_labels is None else self._prev_labels.shape[0]

    def update(self, labels: np.ndarray, num_instances: int,
               n_shared: int | None = None) -> list[int]:
        """Assign track IDs to the instances of a new clip.

        labels: (L, H, W) int label map of the clip (0 = none, k = instance k - 1).
        n_shared: how many leading frames of this clip are the last frames of the previous clip;
        default min(overlap, frames kept, L). Returns the track ID of each instance, in order.
        """
        labels = np.asarray(labels)
        if labels.ndim != 3:
            raise ValueError(f"labels must be (L, H, W), got shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > num_instances):
            raise ValueError(f"labels must lie in 0..{num_instances}")
        if n_shared is None:
            n_shared = min(self.overlap, self.stored_frames, labels.shape[0])
        if n_shared < 0 or n_shared > self.stored_frames or n_shared > labels.shape[0]:
            raise ValueError(f"n_shared={n_shared} but the previous clip kept "
                             f"{self.stored_frames} frames and this clip has {labels.shape[0]}")
        ids: list[int | None] = [None] * num_instances
        if n_shared > 0 and self._prev_ids and num_instances:
            prev = self._prev_labels[self.stored_frames - n_shared:]
            if prev.shape[1:] != labels.shape[1:]:
                raise ValueError(f"frame size changed from {prev.shape[1:]} to "
                                 f"{labels.shape[1:]}; reset the stitcher")
            iou = iou_from_labels(prev, len(self._prev_ids), labels[:n_shared], num_instances)
            for r, c in link_by_iou(iou, self.min_iou):
                ids[c] = self._prev_ids[r]
        for k in range(num_instances):
            if ids[k] is None:
                ids[k] = self._next_id
                self._next_id += 1
        if self.overlap > 0:
            keep = min(self.overlap, labels.shape[0])
            self._prev_labels = np.array(labels[labels.shape[0] - keep:], copy=True)
            self._prev_ids = [int(i) for i in ids]
        else:
            self._prev_labels, self._prev_ids = None, []
        return [int(i) for i in ids]

    def update_masks(self, masks: np.ndarray, n_shared: int | None = None) -> list[int]:
        """As :meth:`update`, from (N, L, H, W) bool masks that are disjoint in every frame."""
        masks = np.asarray(masks, dtype=bool)
        return self.update(labels_from_masks(masks), masks.shape[0], n_shared)
