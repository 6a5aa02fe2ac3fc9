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

Re-linking across gaps (not in the paper; ``relink_max_gap`` > 0 turns it on): an object the
network misses in one or more clips (a small, distant or occluded pedestrian) would come back
under a new ID. The stitcher therefore remembers, for ``relink_max_gap`` frames after it was last
seen, each track's class, last box and velocity (box centre motion per frame within its last
clip). A new instance that IoU linking left without an ID is given a remembered track's ID when
the track is not in this clip, is of the same class (one of ``relink_classes``, if given), was
last seen before the instance's first frame, at most ``relink_max_gap`` frames earlier, and the
instance's box in its first frame lies near the track's box moved on by its velocity: centre
distance / sqrt(box area of the track) <= ``relink_max_distance``, with areas within a factor of
3. Candidates are matched with ``linear_sum_assignment`` on that normalised distance. This runs
on boxes of the clip's own masks, so it costs O(pixels) per clip and works online (the node's
IDs as much as offline ones).

Masks are passed as label maps: (L, H, W) integers, 0 = no instance, k = instance k - 1, so the
masks of one frame are disjoint by construction and all IoUs come from one joint histogram
(O(pixels), independent of the number of instances); or as an ``output_masks.ClipMasks`` (the
streaming tracker's: each instance's mask inside its box), whose IoUs and boxes are the same
numbers at O(box area). Only the last Tc frames of the previous clip are kept, so memory does
not grow with the stream.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

#: Two boxes whose areas differ by more than this factor are never re-linked.
RELINK_MAX_AREA_RATIO = 3.0


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


def instance_boxes(labels: np.ndarray, num_instances: int) -> np.ndarray:
    """(L, H, W) label map -> (num_instances, L, 4) float boxes (x0, y0, x1, y1), exclusive
    ends; NaN where the instance has no pixel in that frame."""
    boxes = np.full((num_instances, labels.shape[0], 4), np.nan)
    for t in range(labels.shape[0]):
        for k, sl in enumerate(ndimage.find_objects(labels[t], max_label=num_instances)):
            if sl is not None:
                boxes[k, t] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    return boxes


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


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
    linked. ``relink_max_gap`` (frames, 0 = off) and ``relink_max_distance`` (in track box
    sizes): re-linking across gaps (module doc); ``relink_classes``: class ids it applies to
    (None = all). All may be changed at any time.
    """

    def __init__(self, overlap: int, min_iou: float = 0.1, relink_max_gap: int = 0,
                 relink_max_distance: float = 1.0,
                 relink_classes: set[int] | None = None) -> None:
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        if relink_max_gap < 0 or relink_max_distance < 0:
            raise ValueError(f"relink_max_gap and relink_max_distance must be >= 0, got "
                             f"{relink_max_gap} and {relink_max_distance}")
        self.overlap = overlap
        self.min_iou = min_iou
        self.relink_max_gap = int(relink_max_gap)
        self.relink_max_distance = float(relink_max_distance)
        self.relink_classes = None if relink_classes is None else set(relink_classes)
        self.reset()

    def reset(self, next_id: int = 1) -> None:
        """Forget the previous clip; new tracks get IDs from `next_id` on (1: a fresh stream)."""
        if next_id < 1:
            raise ValueError(f"next_id must be >= 1, got {next_id}")
        self._next_id = int(next_id)
        self._prev_labels: Any = None  # last <= overlap frames of the previous clip
        self._prev_ids: list[int] = []
        self._frames_seen = 0  # stream frames covered by the clips so far
        #: track id -> (class id, last frame (stream index), box there, velocity (dx, dy)/frame)
        self._memory: dict[int, tuple[int, int, np.ndarray, np.ndarray]] = {}

    @property
    def next_id(self) -> int:
        return self._next_id

    @property
    def stored_frames(self) -> int:
        """How many frames of the previous clip are kept for linking."""
        return 0 if self._prev_labels is None else self._prev_labels.shape[0]

    def update(self, labels: np.ndarray, num_instances: int,
               n_shared: int | None = None, class_ids: list[int] | None = None) -> list[int]:
        """Assign track IDs to the instances of a new clip.

        labels: (L, H, W) int label map of the clip (0 = none, k = instance k - 1), or its
        ClipMasks.
        n_shared: how many leading frames of this clip are the last frames of the previous clip;
        default min(overlap, frames kept, L). class_ids: the instances' classes, used by
        re-linking (without them all instances count as one class). Returns the track ID of
        each instance, in order.
        """
        tubes = hasattr(labels, "iou_with")  # ClipMasks (module doc)
        if not tubes:
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
            if tubes != hasattr(prev, "iou_with"):
                raise ValueError("label maps and ClipMasks mixed in one stream; reset the "
                                 "stitcher")
            iou = (prev.iou_with(labels[:n_shared], len(self._prev_ids), num_instances) if tubes
                   else iou_from_labels(prev, len(self._prev_ids), labels[:n_shared],
                                        num_instances))
            for r, c in link_by_iou(iou, self.min_iou):
                ids[c] = self._prev_ids[r]
        if class_ids is not None and len(class_ids) != num_instances:
            raise ValueError(f"class_ids has {len(class_ids)} entries for {num_instances} "
                             f"instances")
        classes = [int(c) for c in class_ids] if class_ids is not None else [0] * num_instances
        start = self._frames_seen - n_shared  # stream index of this clip's first frame
        self._frames_seen = start + labels.shape[0]
        boxes = None
        if self.relink_max_gap > 0:
            boxes = (labels.boxes(num_instances) if tubes
                     else instance_boxes(labels, num_instances))
        if boxes is not None:
            self._relink(ids, boxes, classes, start)
        for k in range(num_instances):
            if ids[k] is None:
                ids[k] = self._next_id
                self._next_id += 1
        if boxes is not None:
            self._remember(ids, boxes, classes, start)
        if self.overlap > 0:
            keep = min(self.overlap, labels.shape[0])
            tail = labels[labels.shape[0] - keep:]
            self._prev_labels = tail if tubes else np.array(tail, copy=True)
            self._prev_ids = [int(i) for i in ids]
        else:
            self._prev_labels, self._prev_ids = None, []
        return [int(i) for i in ids]

    def _relink(self, ids: list[int | None], boxes: np.ndarray, classes: list[int],
                start: int) -> None:
        """Give unlinked instances the IDs of remembered tracks absent from this clip."""
        # Forget tracks last seen more than relink_max_gap frames before this clip starts: no
        # instance of this clip or a later one could be re-linked to them.
        self._memory = {i: m for i, m in self._memory.items()
                        if start - m[1] <= self.relink_max_gap}
        used = {i for i in ids if i is not None}
        tracks = [i for i in self._memory if i not in used]
        new = [k for k, i in enumerate(ids) if i is None
               and (self.relink_classes is None or classes[k] in self.relink_classes)]
        if not tracks or not new:
            return
        cost = np.full((len(tracks), len(new)), np.inf)
        for c, k in enumerate(new):
            present = np.flatnonzero(~np.isnan(boxes[k, :, 0]))
            if present.size == 0:
                continue
            first = start + int(present[0])
            box = boxes[k, present[0]]
            for r, tid in enumerate(tracks):
                cls, last, last_box, vel = self._memory[tid]
                gap = first - last
                if cls != classes[k] or not 1 <= gap <= self.relink_max_gap:
                    continue
                a_old, a_new = max(_area(last_box), 1.0), max(_area(box), 1.0)
                if max(a_old, a_new) > RELINK_MAX_AREA_RATIO * min(a_old, a_new):
                    continue
                dist = np.linalg.norm(_centre(box) - (_centre(last_box) + vel * gap))
                d = dist / np.sqrt(a_old)
                if d <= self.relink_max_distance:
                    cost[r, c] = d
        ok = np.isfinite(cost)
        if not ok.any():
            return
        rows, cols = linear_sum_assignment(np.where(ok, cost, 1e9))
        for r, c in zip(rows, cols):
            if ok[r, c]:
                ids[new[c]] = tracks[r]

    def _remember(self, ids: list[int | None], boxes: np.ndarray, classes: list[int],
                  start: int) -> None:
        """Store each instance's last box in this clip and its velocity within this clip (first
        to last frame it is in; a track seen in one frame only keeps its previous velocity).
        Measured on a tuning set this scored higher than the motion since the previous clip."""
        for k, tid in enumerate(ids):
            if tid is None or (self.relink_classes is not None
                               and classes[k] not in self.relink_classes):
                continue
            present = np.flatnonzero(~np.isnan(boxes[k, :, 0]))
            if present.size == 0:
                continue
            f0, f1 = int(present[0]), int(present[-1])
            if f1 > f0:
                vel = (_centre(boxes[k, f1]) - _centre(boxes[k, f0])) / (f1 - f0)
            else:
                vel = self._memory[tid][3] if tid in self._memory else np.zeros(2)
            self._memory[tid] = (classes[k], start + f1, boxes[k, f1].copy(), vel)
