"""Post-processing of one clip's clusters into per-frame results, for the streaming tracker.

Everything here works on the model's output grid or inside each instance's box (see
output_masks.py): the label maps are never upsampled to the whole image. In this order: drop
instances of classes not in ``classes`` (on the grid, so an unwanted class does not carve holes
into wanted ones); upsample each kept instance inside its box (bilinear, p > 0.5; the masks of a
frame stay disjoint: clustering assigns each grid cell once and bilinear values of disjoint
masks sum to <= 1); drop instances left without pixels; (the tracker links IDs); then per frame
the area filter (on the network's upsampled mask) and the colour-guided refinement of what
passed it, at a capped resolution (:func:`refinement_image`).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from stemseg_core.inference.clustering import ClipClusters
from stemseg_core.inference.output_masks import ClipMasks, GridSampler, full_mask, refine_frame
from stemseg_core.inference.output_masks import upsample_frame as _upsample_frame
from stemseg_core.inference.preprocess import Geometry
from stemseg_core.inference.types import FrameResult, TrackedInstance

#: The refinement runs on the image shrunk to at most this many times the model input's size.
REFINE_SCALE = 2


def refinement_image(image: np.ndarray, geo: Geometry) -> np.ndarray:
    """The frame the refinement filters against: the image itself when it is not larger than
    REFINE_SCALE x the model input (``geo.resized_size``), else the image shrunk to that (area
    averaging): the refined soft masks are upsampled to the output (output_masks.refine_frame).
    """
    nh, nw = (REFINE_SCALE * n for n in geo.resized_size)
    if image.shape[0] * image.shape[1] <= nh * nw:
        return image.copy()
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)


def scaled_radii(radii: dict[int, int], scale: float) -> dict[int, int]:
    """Refinement radii (in output pixels) at an image ``scale`` times the output's size: the
    filter window covers the same part of the scene (at least 1 pixel). Unscaled radii eroded
    thin objects (1280x720 drives refined at 192x341: mask IoU 0.65 against refining at 720p).
    REFINE_SCALE 2 rather than 1: pedestrian HOTA 29.14 vs 26.85 (720p at 1280x720: 28.29),
    docs/experiments.md "Post-processing at the model's resolution"."""
    if scale == 1:
        return radii
    return {k: max(1, round(r * scale)) for k, r in radii.items()}


class Samplers:
    """The grid -> output / grid -> refinement image / refinement image -> output samplers of
    one stream, built once per grid size."""

    def __init__(self, geo: Geometry, out_size: tuple[int, int]) -> None:
        self.geo = geo
        self.out = Geometry(out_size, geo.resized_size, geo.padded_size)
        self._cache: dict[Any, GridSampler] = {}

    def _get(self, key: Any, build: Any) -> GridSampler:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def grid_to_out(self, grid: tuple[int, int]) -> GridSampler:
        return self._get(("out", grid), lambda: GridSampler.for_grid(grid, self.out))

    def grid_to(self, grid: tuple[int, int], size: tuple[int, int]) -> GridSampler:
        g = Geometry(size, self.geo.resized_size, self.geo.padded_size)
        return self._get(("grid", grid, size), lambda: GridSampler.for_grid(grid, g))

    def to_out(self, size: tuple[int, int]) -> GridSampler:
        return self._get(("img", size), lambda: GridSampler(size, self.out.image_size))


def clip_masks(clusters: ClipClusters, wanted: set[int] | None, samplers: Samplers
               ) -> tuple[ClipMasks, np.ndarray, list[float], list[int]]:
    """Clusters -> (masks at the output size, the grid labels (L, h, w) int32 with 0 = none and
    k + 1 = kept instance k, scores, class ids); instances numbered by score, those of unwanted
    classes or without an output pixel dropped."""
    keep = [j for j in range(len(clusters))
            if wanted is None or clusters.class_ids[j] in wanted]
    keep.sort(key=lambda j: -clusters.scores[j])  # clustering yields this order; to be safe
    lowres = clusters.labels  # (L, h, w), -1 = none
    lut = np.zeros(len(clusters) + 1, np.int32)
    if keep:
        lut[np.asarray(keep) + 1] = np.arange(1, len(keep) + 1, dtype=np.int32)
    grid = lut[lowres + 1]
    sampler = samplers.grid_to_out(tuple(grid.shape[1:]))
    masks = ClipMasks([_upsample_frame(g, sampler) for g in grid], samplers.out.image_size)
    present = masks.present(len(keep))
    if not present.all():
        order = np.flatnonzero(present)
        masks = masks.renumbered({int(k): i for i, k in enumerate(order)})
        remap = np.zeros(len(keep) + 1, np.int32)
        remap[order + 1] = np.arange(1, len(order) + 1, dtype=np.int32)
        grid = remap[grid]
        keep = [keep[k] for k in order]
    return (masks, grid, [clusters.scores[j] for j in keep],
            [clusters.class_ids[j] for j in keep])


def frame_results(tr: Any, masks: ClipMasks, grid: np.ndarray, scores: list[float],
                  class_ids: list[int], ids: list[int],
                  meta: list[tuple[Any, int, np.ndarray | None]], first: int,
                  samplers: Samplers) -> list[FrameResult]:
    """The FrameResults of frames first, first + 1, ... of a clip (``meta``: stamp, stream
    index and refinement image of each), with the thresholds of tracker ``tr``: an instance is
    left out of a frame where its area is below its class's minimum (after linking, so a
    briefly small object keeps its ID); the masks that pass are refined (``tr``'s radii)."""
    size = masks.size
    # Minimum area of each instance (by its class), once per clip rather than per frame.
    need = np.array([max(1, tr.min_mask_area_by_id.get(c, tr.min_mask_area))
                     for c in class_ids], dtype=np.int64)
    # Refinement radius of each instance (by its class; absent = not refined), once per clip.
    radius = {k: tr.mask_refinement_radius_by_id.get(c, tr.mask_refinement_radius)
              for k, c in enumerate(class_ids)
              if tr.mask_refinement_ids is None or c in tr.mask_refinement_ids}
    results = []
    for i, (stamp, index, image) in enumerate(meta):
        t = first + i
        kept = set(np.flatnonzero(masks.areas(t, len(scores)) >= need).tolist())
        pieces = {k: p for k, p in masks.frames[t].items() if k in kept}
        if image is not None and tr.mask_refinement_radius > 0 and pieces:
            # The area filter judges the network's mask; refinement only drops a mask it
            # empties (issue 39). Masks left out neither keep pixels nor compete for them.
            isize = tuple(image.shape[:2])
            lab = grid[t] * np.isin(grid[t], [k + 1 for k in pieces])
            pieces = refine_frame(image, lab, pieces, scaled_radii(radius, isize[0] / size[0]),
                                  tr.mask_refinement_eps,
                                  samplers.grid_to(tuple(grid.shape[1:]), isize),
                                  samplers.to_out(isize))
        instances = []
        for k, piece in pieces.items():
            c = class_ids[k]
            y, x, m = piece
            mask = full_mask(piece, size)
            instances.append(TrackedInstance(
                track_id=ids[k], class_id=c,
                class_name=tr.class_names[c] if c < len(tr.class_names) else str(c),
                score=float(scores[k]), mask=mask,
                _bbox=(mask, (x, y, int(m.shape[1]), int(m.shape[0])))))
        results.append(FrameResult(index=index, stamp=stamp, image_size=size,
                                   instances=instances))
    return results
