"""Edge-aware refinement of a frame's instance masks with a colour-guided filter.

Not in the paper. The network's masks come from an output at 1/2 (or 1/4) of the input size and
are upsampled bilinearly, so their borders are blocky and miss thin parts (a pedestrian's legs).
Each instance's binary mask is filtered with the guided filter of He, Sun and Tang (ECCV 2010,
"Guided Image Filtering", the colour-guide form): within every (2r+1)^2 window the output is an
affine function of the frame's RGB values fitted to the mask by ridge regression (ridge ``eps``),
so the filtered mask follows the image's colour edges. A pixel then goes to the instance with the
highest filtered value, or to no instance where the background value 1 - sum of filtered values
is higher (the filter is linear and keeps constants, so this is the filtered background mask).

Exactness with crops: an instance's filtered mask is 0 farther than 2r from its mask, so each
instance is filtered in its box grown by 2r + 1 pixels, whose image statistics there equal the
whole frame's; the cost is O(box area) per instance, not O(frame).

OpenCV's own guidedFilter lives in the contrib build (cv2.ximgproc), which would replace the
project's pinned opencv-python-headless wheel; the filter is a few box filters (cv2.blur) here.

Shapes: image (H, W, 3) uint8 RGB; labels (H, W) int, 0 = none, k = instance k - 1.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import cv2
import numpy as np
from scipy import ndimage


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window around each pixel (reflected at the borders)."""
    return cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, masks: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour-guided filter of several inputs with one guide.

    guide: (H, W, 3) float32 in [0, 1]; masks: (N, H, W) float32. Returns (N, H, W) float32.
    Per window: a = (cov(I) + eps E)^-1 cov(I, p), b = mean(p) - a . mean(I); the output at a
    pixel is the mean of a . I + b over the windows that hold it.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1 pixel, got {radius}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    mean_i = _box(guide, radius)  # (H, W, 3)
    m = [mean_i[..., c] for c in range(3)]
    g = [np.ascontiguousarray(guide[..., c]) for c in range(3)]

    def var(a: int, b: int) -> np.ndarray:
        return _box(g[a] * g[b], radius) - m[a] * m[b] + (eps if a == b else 0.0)

    # Inverse of the symmetric 3x3 (cov + eps E) per pixel, by cofactors.
    s00, s01, s02, s11, s12, s22 = var(0, 0), var(0, 1), var(0, 2), var(1, 1), var(1, 2), var(2, 2)
    c00 = s11 * s22 - s12 * s12
    c01 = s02 * s12 - s01 * s22
    c02 = s01 * s12 - s02 * s11
    c11 = s00 * s22 - s02 * s02
    c12 = s01 * s02 - s00 * s12
    c22 = s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    inv = [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]
    out = np.empty(masks.shape, dtype=np.float32)
    for n, p in enumerate(masks):
        p = np.ascontiguousarray(p, dtype=np.float32)
        mean_p = _box(p, radius)
        cov_ip = [_box(g[c] * p, radius) - m[c] * mean_p for c in range(3)]
        a = [(inv[r][0] * cov_ip[0] + inv[r][1] * cov_ip[1] + inv[r][2] * cov_ip[2]) / det
             for r in range(3)]
        b = mean_p - a[0] * m[0] - a[1] * m[1] - a[2] * m[2]
        out[n] = (_box(a[0], radius) * g[0] + _box(a[1], radius) * g[1]
                  + _box(a[2], radius) * g[2] + _box(b, radius))
    return out


def filtered_masks(image: np.ndarray, labels: np.ndarray, radii: Mapping[int, int],
                   eps: float) -> Iterator[tuple[int, tuple[slice, slice], np.ndarray]]:
    """The guided-filtered mask of each instance in ``radii`` (in that order) that has pixels in
    ``labels`` (H, W; 0 = none, k + 1 = instance k): (k, window, filtered values there); the
    window is its box grown by 2r + 1 pixels (the filtered mask is 0 beyond it)."""
    labels = np.asarray(labels)
    h, w = labels.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    if not radii:
        return
    top = max(int(labels.max()), max(int(k) for k in radii) + 1)
    boxes = ndimage.find_objects(labels, max_label=top)  # box of label k + 1 at [k]
    for k, r in radii.items():
        box = boxes[int(k)]
        if box is None:
            continue
        grow = 2 * int(r) + 1
        win = (slice(max(0, box[0].start - grow), min(h, box[0].stop + grow)),
               slice(max(0, box[1].start - grow), min(w, box[1].stop + grow)))
        guide = image[win].astype(np.float32) / 255.0
        yield int(k), win, guided_filter(
            guide, (labels[win] == k + 1).astype(np.float32)[None], int(r), eps)[0]


def refine_labels(image: np.ndarray, labels: np.ndarray, radii: Mapping[int, int],
                  eps: float) -> np.ndarray:
    """Re-decide the pixels around the instances in ``radii`` (0-based instance index -> its
    filter radius; each instance's filtered mask is exact on its own, so radii may differ).

    Instances not in ``radii`` keep their pixels exactly and are never taken over. Returns a
    new (H, W) int32 label map (an instance may end up with no pixel). (The tracker refines
    through output_masks.refine_frame, which decides the same pixels at another size.)
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    out = labels.astype(np.int32, copy=True)
    refined = np.zeros(max(int(out.max()), max((int(k) for k in radii), default=-1) + 1) + 1,
                       bool)  # by label
    refined[[int(k) + 1 for k in radii]] = True
    fixed = (out > 0) & ~refined[out]  # pixels never re-decided
    total = np.zeros((h, w), np.float32)  # sum of the filtered refined masks
    best = np.zeros((h, w), np.float32)  # highest filtered value so far
    best_label = np.zeros((h, w), np.int32)
    touched = np.zeros((h, w), bool)
    for k, win, q in filtered_masks(image, out, radii, eps):
        total[win] += q
        higher = q > best[win]
        best[win] = np.where(higher, q, best[win])
        best_label[win] = np.where(higher, k + 1, best_label[win])
        touched[win] = True
    if not touched.any():
        return out
    # Background value 1 - sum: the filter is linear and keeps constants (module doc).
    decided = np.where(best > 1.0 - total, best_label, 0)
    region = touched & ~fixed
    out[region] = decided[region]
    return out
