"""Instance masks at the caller's resolution, upsampled per instance inside its box (issue 40).

The network's masks live on its output grid (h, w) (1/4 or 1/2 of the padded model input). The
tracker used to upsample every clip's label map to the whole image (L x H x W) and run the area
filter, stitching and refinement there: at 1280x720 that was most of a frame's time. Here each
instance's mask is upsampled only in the output pixels whose bilinear taps touch its grid box,
with the same float32 weights summed in the same order as ``preprocess.upsample_labels`` (per
instance, p > 0.5): the pixels are exactly the full-frame ones, so areas, IoUs and boxes are too,
at O(box area) per instance instead of O(H W) per frame.

:class:`ClipMasks` holds a clip's masks this way (tight boxes, one small bool array per
instance and frame); the stitcher computes IoUs and boxes from it. :func:`refine_frame` runs the
colour-guided refinement at a capped resolution (the model input's size when the image is
larger) and upsamples each refined soft mask into the output before the pixels are decided, so
the edge detail of the filter is kept; at equal sizes it equals ``refine_labels`` exactly.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from stemseg_core.inference.mask_refinement import filtered_masks
from stemseg_core.inference.preprocess import Geometry, bilinear_taps

#: One instance in one frame: (top row, left column, tight bool mask).
Piece = tuple[int, int, np.ndarray]


class GridSampler:
    """Bilinear sampling (align_corners=False) of an (h, w) source onto the first (H, W) pixels
    of a (big_h, big_w) resize of it, as ``F.interpolate`` and ``upsample_labels`` compute it."""

    def __init__(self, src_hw: tuple[int, int], out_hw: tuple[int, int],
                 big_hw: tuple[int, int] | None = None) -> None:
        (h, w), (self.out_h, self.out_w) = src_hw, out_hw
        big_h, big_w = big_hw or out_hw
        self.y0, self.y1, self.fy = bilinear_taps(h, big_h, self.out_h)
        self.x0, self.x1, self.fx = bilinear_taps(w, big_w, self.out_w)
        self.src_hw = (h, w)

    @classmethod
    def for_grid(cls, grid_hw: tuple[int, int], geo: Geometry) -> GridSampler:
        """Model output grid (covering the padded input) -> ``geo.image_size``."""
        return cls(grid_hw, geo.image_size, geo.output_frame_size(*grid_hw))

    def touching(self, r0: int, r1: int, c0: int, c1: int) -> tuple[slice, slice]:
        """Output rows/columns with a tap in source rows [r0, r1) and columns [c0, c1)."""
        return (slice(int(np.searchsorted(self.y1, r0)), int(np.searchsorted(self.y0, r1 - 1,
                                                                             "right"))),
                slice(int(np.searchsorted(self.x1, c0)), int(np.searchsorted(self.x0, c1 - 1,
                                                                             "right"))))

    def inside(self, r0: int, r1: int, c0: int, c1: int) -> tuple[slice, slice]:
        """Output rows/columns whose taps all lie in source rows [r0, r1), columns [c0, c1)."""
        return (slice(int(np.searchsorted(self.y0, r0)), int(np.searchsorted(self.y1, r1 - 1,
                                                                             "right"))),
                slice(int(np.searchsorted(self.x0, c0)), int(np.searchsorted(self.x1, c1 - 1,
                                                                             "right"))))

    def sample(self, src: np.ndarray, r0: int, c0: int, rows: slice,
               cols: slice) -> np.ndarray:
        """float32 bilinear values at output ``rows`` x ``cols`` of a source whose crop starting
        at (r0, c0) is ``src`` (it must hold every tap of those pixels). Separable: columns on
        the small source first, then whole rows; equal to the four-tap sum of
        ``upsample_labels`` up to float rounding."""
        fy, fx = self.fy[rows][:, None], self.fx[cols][None, :]
        src = np.asarray(src, np.float32)
        mid = ((1 - fx) * np.take(src, self.x0[cols] - c0, axis=1)
               + fx * np.take(src, self.x1[cols] - c0, axis=1))
        return ((1 - fy) * np.take(mid, self.y0[rows] - r0, axis=0)
                + fy * np.take(mid, self.y1[rows] - r0, axis=0))

    def sample_mask(self, src: np.ndarray, r0: int, c0: int, rows: slice,
                    cols: slice) -> np.ndarray:
        """bool: bilinear value of a bool source > 0.5 at output ``rows`` x ``cols`` (``src``
        as in :meth:`sample`), bit for bit as ``upsample_labels`` decides it: its float32 weights
        summed in its order, but only where the four taps differ (elsewhere the value is 0 or
        the four weights' sum, about 1). Columns are gathered on the small source, rows copied."""
        y0, y1 = self.y0[rows] - r0, self.y1[rows] - r0
        x0, x1 = self.x0[cols] - c0, self.x1[cols] - c0
        left, right = np.take(src, x0, axis=1), np.take(src, x1, axis=1)  # (src rows, cols)
        both, either = left & right, left | right
        out = np.take(both, y0, axis=0) & np.take(both, y1, axis=0)  # all four taps set
        mixed = (np.take(either, y0, axis=0) | np.take(either, y1, axis=0)) & ~out
        flat = np.flatnonzero(mixed)
        if flat.size:
            n = out.shape[1]
            ii, jj = flat // n, flat % n
            top, bottom = y0[ii] * n + jj, y1[ii] * n + jj  # flat indices into left/right
            left, right = left.ravel(), right.ravel()
            fy, fx = self.fy[rows][ii], self.fx[cols][jj]
            f32 = np.float32
            a, b = np.take(left, top).astype(f32), np.take(right, top).astype(f32)
            c, d = np.take(left, bottom).astype(f32), np.take(right, bottom).astype(f32)
            value = (1 - fy) * (1 - fx) * a + (1 - fy) * fx * b + fy * (1 - fx) * c + fy * fx * d
            np.put(out, flat, value > 0.5)
        return out

    def is_identity(self) -> bool:
        """Source and output are the same grid (sampling returns the source)."""
        return (self.src_hw == (self.out_h, self.out_w) and not self.fy.any()
                and not self.fx.any() and (self.y0 == np.arange(self.out_h)).all()
                and (self.x0 == np.arange(self.out_w)).all())

    def upsample_instance(self, labels: np.ndarray, value: int, box: tuple[slice, slice]
                          ) -> Piece | None:
        """Mask of ``labels == value`` (its grid box ``box``) upsampled, p > 0.5, tight."""
        rows, cols = self.touching(box[0].start, box[0].stop, box[1].start, box[1].stop)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return None
        r0, c0 = int(self.y0[rows.start]), int(self.x0[cols.start])
        r1, c1 = int(self.y1[rows.stop - 1]) + 1, int(self.x1[cols.stop - 1]) + 1
        return tight(rows.start, cols.start,
                     self.sample_mask(labels[r0:r1, c0:c1] == value, r0, c0, rows, cols))


def tight(top: int, left: int, mask: np.ndarray) -> Piece | None:
    """(top, left, mask) cropped to the mask's pixels; None when it has none."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return (top + int(ys[0]), left + int(xs[0]),
            mask[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1])


def upsample_frame(labels: np.ndarray, sampler: GridSampler,
                   only: set[int] | None = None) -> dict[int, Piece]:
    """One frame's grid labels (h, w; 0 = none, k + 1 = instance k) -> {k: piece} at the
    sampler's output size (instances in ``only`` when given; those left empty are absent)."""
    out = {}
    for k, box in enumerate(ndimage.find_objects(labels)):
        if box is None or (only is not None and k not in only):
            continue
        piece = sampler.upsample_instance(labels, k + 1, box)
        if piece is not None:
            out[k] = piece
    return out


def paste(pieces: Mapping[int, Piece], size: tuple[int, int]) -> np.ndarray:
    """{k: piece} -> (H, W) int32 label map (0 = none, k + 1 = instance k)."""
    lab = np.zeros(size, np.int32)
    for k, (y, x, m) in pieces.items():
        lab[y:y + m.shape[0], x:x + m.shape[1]][m] = k + 1
    return lab


def full_mask(piece: Piece, size: tuple[int, int]) -> np.ndarray:
    """A piece as an (H, W) bool mask."""
    y, x, m = piece
    out = np.zeros(size, bool)
    out[y:y + m.shape[0], x:x + m.shape[1]] = m
    return out


def _overlap(a: tuple[int, int, tuple[int, int]], b: tuple[int, int, tuple[int, int]]
             ) -> tuple[slice, slice, slice, slice] | None:
    """Where two boxes (top, left, (h, w)) overlap, as slices into a's and b's arrays."""
    y0, x0 = max(a[0], b[0]), max(a[1], b[1])
    y1 = min(a[0] + a[2][0], b[0] + b[2][0])
    x1 = min(a[1] + a[2][1], b[1] + b[2][1])
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0 - a[0], y1 - a[0]), slice(x0 - a[1], x1 - a[1]),
            slice(y0 - b[0], y1 - b[0]), slice(x0 - b[1], x1 - b[1]))


class ClipMasks:
    """The instance masks of a clip at the output size: per frame {instance k: piece}.

    Stands in for an (L, H, W) label map where the stitcher takes one (``shape``, slicing by
    frames, ``iou_with``, ``boxes``), at O(box area) cost.
    """

    def __init__(self, frames: list[dict[int, Piece]], size: tuple[int, int]) -> None:
        self.frames = frames
        self.size = (int(size[0]), int(size[1]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.frames), *self.size)

    def __getitem__(self, frames: slice) -> ClipMasks:
        return ClipMasks(self.frames[frames], self.size)

    def present(self, num: int) -> np.ndarray:
        """(num,) bool: the instances with a pixel in some frame."""
        out = np.zeros(num, bool)
        for f in self.frames:
            out[list(f)] = True
        return out

    def renumbered(self, remap: Mapping[int, int]) -> ClipMasks:
        """Instance k -> remap[k]; instances not in remap are dropped."""
        return ClipMasks([{remap[k]: p for k, p in f.items() if k in remap}
                          for f in self.frames], self.size)

    def areas(self, t: int, num: int) -> np.ndarray:
        out = np.zeros(num, np.int64)
        for k, (_, _, m) in self.frames[t].items():
            out[k] = int(np.count_nonzero(m))
        return out

    def boxes(self, num: int) -> np.ndarray:
        """(num, L, 4) float boxes (x0, y0, x1, y1), exclusive ends; NaN where absent."""
        out = np.full((num, len(self.frames), 4), np.nan)
        for t, f in enumerate(self.frames):
            for k, (y, x, m) in f.items():
                out[k, t] = (x, y, x + m.shape[1], y + m.shape[0])
        return out

    def iou_with(self, new: ClipMasks, num_self: int, num_new: int) -> np.ndarray:
        """(num_self, num_new) IoU of the mask tubes over the frames both hold (equal length),
        as ``stitching.iou_from_labels`` of the label maps."""
        if self.shape != new.shape:
            raise ValueError(f"mask tubes differ in shape: {self.shape} vs {new.shape}")
        inter = np.zeros((num_self, num_new), np.int64)
        area_a, area_b = np.zeros(num_self, np.int64), np.zeros(num_new, np.int64)
        for fa, fb in zip(self.frames, new.frames):
            for i, (ya, xa, ma) in fa.items():
                area_a[i] += int(np.count_nonzero(ma))
                for j, (yb, xb, mb) in fb.items():
                    ov = _overlap((ya, xa, ma.shape), (yb, xb, mb.shape))
                    if ov is not None:
                        inter[i, j] += int(np.count_nonzero(ma[ov[0], ov[1]]
                                                            & mb[ov[2], ov[3]]))
            for j, (_, _, mb) in fb.items():
                area_b[j] += int(np.count_nonzero(mb))
        union = (area_a[:, None] + area_b[None, :] - inter).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def refine_frame(image: np.ndarray, grid_labels: np.ndarray, pieces: dict[int, Piece],
                 radii: Mapping[int, int], eps: float, grid_to_image: GridSampler,
                 image_to_out: GridSampler) -> dict[int, Piece]:
    """Refine the instances in ``radii`` of one frame (``pieces``: the kept instances at the
    output size) against ``image`` (the frame at the refinement size, h x w).

    The kept masks are upsampled from the grid to the image (``grid_to_image``), filtered there
    (mask_refinement.filtered_masks), and each filtered soft mask is upsampled to the output
    (``image_to_out``) where the pixels are decided as ``refine_labels`` decides them (highest
    filtered value, background 1 - sum). Instances not refined keep their pixels and are never
    taken over. Returns the pieces left with pixels."""
    kept = set(pieces)
    refine = {k: r for k, r in radii.items() if k in kept}
    if not refine:
        return pieces
    size = (image_to_out.out_h, image_to_out.out_w)
    if image.shape[:2] == size:
        small = paste(pieces, size)  # refinement at the output size: the same masks
    else:
        small = paste(upsample_frame(grid_labels, grid_to_image, kept), image.shape[:2])
    identity = image_to_out.is_identity()
    soft = []  # (k, top, left, q at the output size)
    for k, win, q in filtered_masks(image, small, refine, eps):
        if identity:
            soft.append((k, win[0].start, win[1].start, q))
            continue
        # q is 0 beyond its window (more than 2r from the mask): a ring of zeros around it lets
        # every output pixel with a tap in the window be sampled.
        r0, c0 = win[0].start - 1, win[1].start - 1
        rows, cols = image_to_out.inside(r0, win[0].stop + 1, c0, win[1].stop + 1)
        if rows.start < rows.stop and cols.start < cols.stop:
            soft.append((k, rows.start, cols.start,
                         image_to_out.sample(np.pad(q, 1), r0, c0, rows, cols)))
    out = {k: p for k, p in pieces.items() if k not in refine}
    if not soft:
        return dict(sorted(out.items()))
    # Sum, highest value and its instance over the soft masks' union box, in radii order (as
    # refine_labels sums them); then each instance keeps the pixels it wins.
    top = min(t for _, t, _, _ in soft)
    left = min(x for _, _, x, _ in soft)
    shape = (max(t + q.shape[0] for _, t, _, q in soft) - top,
             max(x + q.shape[1] for _, _, x, q in soft) - left)
    total = np.zeros(shape, np.float32)
    best = np.zeros(shape, np.float32)
    best_label = np.full(shape, -1, np.int64)
    for k, t, x, q in soft:
        win = (slice(t - top, t - top + q.shape[0]), slice(x - left, x - left + q.shape[1]))
        total[win] += q
        higher = q > best[win]
        best[win] = np.where(higher, q, best[win])
        best_label[win] = np.where(higher, k, best_label[win])
    free = best > 1.0 - total
    for fy, fx, fm in out.values():  # instances not refined keep their pixels
        ov = _overlap((top, left, shape), (fy, fx, fm.shape))
        if ov is not None:
            free[ov[0], ov[1]] &= ~fm[ov[2], ov[3]]
    for k, t, x, q in soft:
        win = (slice(t - top, t - top + q.shape[0]), slice(x - left, x - left + q.shape[1]))
        piece = tight(t, x, (best_label[win] == k) & free[win])
        if piece is not None:
            out[k] = piece
    return dict(sorted(out.items()))
