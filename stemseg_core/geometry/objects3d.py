"""Per-instance 3-D position and size from a frame's masks and its depth image or LiDAR scan.

Once per frame the masks become a label image on a grid of every ``step``-th pixel
(:func:`label_grid`); each instance's 3-D points are the grid pixels' back-projected depths
(:func:`lift_from_depth`) or the LiDAR points that project into its cells
(:func:`lift_from_points`). Statistics are per label over all points at once (sorting, no
loop over pixels):

- ``position``: per-axis median of the instance's points, after dropping points farther than
  ``median z + max(gate_m, gate_fraction * median z)`` (background seen through mask edges);
- ``size``: per-axis robust extent ``(p_hi - p_lo) / ((hi - lo) / 100)`` of those points
  (percentiles ``lo``/``hi``, default 10/90; the division makes it the full width of a
  uniform spread), metres;
- ``has_position`` False (position and size NaN) with fewer than ``min_points`` points.

Camera optical frame: x right, y down, z forward, metres. K is the colour camera's (3, 3).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stemseg_core.geometry.depth import depth_to_metres, intrinsics_of, points_to_camera


@dataclass
class Object3D:
    """3-D summary of one instance (camera optical frame, metres)."""

    has_position: bool
    position: np.ndarray  # (3,) x right, y down, z forward; NaN without position
    size: np.ndarray  # (3,) robust extent along x, y, z; NaN without position
    num_points: int  # points it was computed from (after the far gate)


def grid_step(height: int, width: int, max_side: int = 320) -> int:
    """Sampling step so that the grid's longer side is at most ``max_side`` pixels."""
    return max(1, -(-max(height, width) // max_side))


def label_grid(masks: Sequence[np.ndarray], step: int) -> np.ndarray:
    """(H, W) bool masks -> (ceil(H/step), ceil(W/step)) int32 labels of the pixels
    ``(step * i, step * j)``: 0 = none, k + 1 = masks[k] (a later mask wins an overlap)."""
    if not masks:
        raise ValueError("label_grid needs at least one mask")
    h, w = masks[0].shape
    labels = np.zeros((-(-h // step), -(-w // step)), np.int32)
    for k, m in enumerate(masks):
        if m.shape != (h, w):
            raise ValueError(f"mask {k} is {m.shape[1]}x{m.shape[0]}, mask 0 is {w}x{h}")
        labels[m[::step, ::step]] = k + 1
    return labels


def _grid_points(depth_m: np.ndarray, K: np.ndarray, shape: tuple[int, int], step: int
                 ) -> np.ndarray:
    """(h, w, 3) camera points of the grid pixels (mask resolution ``shape``); NaN: none.
    A depth image of another size than the masks is sampled at the same relative place."""
    H, W = shape
    v = np.arange(0, H, step, dtype=np.float64)
    u = np.arange(0, W, step, dtype=np.float64)
    dh, dw = depth_m.shape
    rows = np.minimum((v * dh / H).astype(np.int64), dh - 1)
    cols = np.minimum((u * dw / W).astype(np.int64), dw - 1)
    z = depth_m[np.ix_(rows, cols)].astype(np.float64)
    x = (u[None, :] - K[0, 2]) / K[0, 0] * z
    y = (v[:, None] - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], -1)


def _quantile(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray,
              q: float) -> np.ndarray:
    """Linear-interpolated quantile ``q`` of each group of a group-wise sorted array."""
    pos = starts + q * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, starts + counts - 1)
    frac = pos - lo
    return sorted_vals[lo] * (1 - frac) + sorted_vals[hi] * frac


def _group_stats(lab: np.ndarray, xyz: np.ndarray, n: int, qs: Sequence[float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(len(qs), n, 3) quantiles per label 1..n and (n,) counts (labels without points: 0)."""
    counts = np.bincount(lab, minlength=n + 1)[1:]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((len(qs), n, 3), np.nan)
    has = counts > 0
    for axis in range(3):
        order = np.lexsort((xyz[:, axis], lab))
        vals = xyz[order, axis]
        for i, q in enumerate(qs):
            out[i, has, axis] = _quantile(vals, starts[has], counts[has], q)
    return out, counts


def lift_points(lab: np.ndarray, xyz: np.ndarray, n: int, *, percentiles=(10.0, 90.0),
                min_points: int = 3, gate_m: float = 3.0, gate_fraction: float = 0.2
                ) -> list[Object3D]:
    """Objects of labels 1..n from (N,) labels (0 = none) and (N, 3) camera points."""
    keep = (lab > 0) & np.isfinite(xyz).all(1)
    lab, xyz = lab[keep] - 1, xyz[keep]
    lab1 = lab + 1
    (med,), counts = _group_stats(lab1, xyz, n, (0.5,))
    # drop the background seen through mask edges: far behind the instance's median depth
    mz = med[:, 2]
    limit = mz + np.maximum(gate_m, gate_fraction * mz)
    near = xyz[:, 2] <= limit[lab]
    lo, hi = percentiles
    stats, counts = _group_stats(lab1[near], xyz[near], n, (0.5, lo / 100, hi / 100))
    spread = (hi - lo) / 100.0
    objects = []
    for k in range(n):
        ok = bool(counts[k] >= min_points)
        nan3 = np.full(3, np.nan)
        objects.append(Object3D(ok, stats[0, k] if ok else nan3,
                                (stats[2, k] - stats[1, k]) / spread if ok else nan3,
                                int(counts[k])))
    return objects


def lift_from_depth(masks: Sequence[np.ndarray], depth: np.ndarray, K: np.ndarray, *,
                    step: int | None = None, **kw) -> list[Object3D]:
    """One :class:`Object3D` per mask from a depth image (uint16 mm or float m, registered to
    the colour image; 0/NaN = no return) and the colour camera's K (3x3 or P 3x4)."""
    if not masks:
        return []
    K = intrinsics_of(K)
    H, W = masks[0].shape
    step = step or grid_step(H, W)
    labels = label_grid(masks, step)
    pts = _grid_points(depth_to_metres(depth), K, (H, W), step)
    return lift_points(labels.ravel(), pts.reshape(-1, 3), len(masks), **kw)


def lift_from_points(masks: Sequence[np.ndarray], points: np.ndarray, velo_to_cam: np.ndarray,
                     K: np.ndarray, *, step: int | None = None, **kw) -> list[Object3D]:
    """One :class:`Object3D` per mask from LiDAR points ((N, >=3) x y z [...] in the LiDAR
    frame), the (3, 4) or (4, 4) LiDAR -> camera transform and the colour camera's K: the
    points in front of the camera whose projection falls on a mask's grid cell."""
    if not masks:
        return []
    K = intrinsics_of(K)
    cam = points_to_camera(points, velo_to_cam)
    H, W = masks[0].shape
    step = step or grid_step(H, W)
    labels = label_grid(masks, step)
    u = K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]
    v = K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]
    j = np.round(u / step).astype(np.int64)
    i = np.round(v / step).astype(np.int64)
    inside = (i >= 0) & (i < labels.shape[0]) & (j >= 0) & (j < labels.shape[1])
    lab = np.zeros(len(cam), np.int64)
    lab[inside] = labels[i[inside], j[inside]]
    return lift_points(lab, cam, len(masks), **kw)
