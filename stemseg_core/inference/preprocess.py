"""Resizing/padding of camera images for the model, and mapping of outputs back to the image.

The model needs H, W multiples of 32. An image of size (H, W) is resized (aspect kept) so that its
shorter side is ``min_side`` unless that makes the longer side exceed ``max_side`` (then the
longer side is ``max_side``) - rounded half to even, as the authors' Python ``round`` - and 0
disables either limit. The resized image (nh, nw) is then padded
at the bottom/right to (Hp, Wp), multiples of 32, with the model's pixel mean (so padding is 0
after the model's normalisation). Model outputs come at 1/4 of (Hp, Wp).

Everything here is numpy/scipy: the resize reproduces ``torch.nn.functional.interpolate``
(bilinear, align_corners False, with or without its antialias filter) as two sparse matrices of
float32 taps (max |diff| to torch 4.6e-5 on 0..255 values, test_preprocess_bench.py; as fast as
torch's kernel on one core).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import sparse

STRIDE = 32


@dataclass(frozen=True)
class Geometry:
    """How one image size maps to the model input and back."""

    image_size: tuple[int, int]  # (H, W) of the caller's image
    resized_size: tuple[int, int]  # (nh, nw) after the aspect-keeping resize
    padded_size: tuple[int, int]  # (Hp, Wp), multiples of 32

    @property
    def needs_resize(self) -> bool:
        return self.resized_size != self.image_size

    def output_frame_size(self, out_h: int, out_w: int) -> tuple[int, int]:
        """Size a model output map of (out_h, out_w) (covering the padded input) must be resized
        to so that, cropped to (H, W) from the top-left, it lies on the caller's image."""
        (h, w), (nh, nw) = self.image_size, self.resized_size
        hp, wp = self.padded_size
        return (max(h, round(hp * h / nh)), max(w, round(wp * w / nw)))


def resized_size(h: int, w: int, min_side: int = 0, max_side: int = 0) -> tuple[int, int]:
    """(nh, nw) per the rule in the module docstring; (h, w) when both limits are 0."""
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    scale = 1.0
    if min_side > 0:
        scale = min_side / min(h, w)
    if max_side > 0 and max(h, w) * scale > max_side:
        scale = max_side / max(h, w)
    if scale == 1.0:
        return h, w
    return max(1, round(h * scale)), max(1, round(w * scale))


def padded(n: int, stride: int = STRIDE) -> int:
    return ((n + stride - 1) // stride) * stride


def geometry(h: int, w: int, min_side: int = 0, max_side: int = 0) -> Geometry:
    nh, nw = resized_size(h, w, min_side, max_side)
    return Geometry((h, w), (nh, nw), (padded(nh), padded(nw)))


def check_image(image: object) -> np.ndarray:
    """Validate an (H, W, 3) uint8 RGB numpy image; ValueError naming what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (H, W, 3) uint8 RGB, got "
                         f"{type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB (0..255), got dtype {image.dtype}; convert "
                         f"e.g. with (img * 255).clip(0, 255).astype(np.uint8)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) (RGB), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image


def prepare_frame(image: np.ndarray, geo: Geometry, pixel_mean: list[float], *,
                  channel_order: str = "rgb", antialias: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, Hp, Wp) float32 0..255, resized (bilinear, align_corners
    False; antialiased when shrinking unless ``antialias`` is False, as the authors) and padded.
    ``channel_order`` "bgr" swaps the channels for models trained on cv2 images (the authors');
    ``pixel_mean`` is in that order."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    nh, nw = geo.resized_size
    hp, wp = geo.padded_size
    out = np.empty((3, hp, wp), np.float32)
    if (hp, wp) != (nh, nw):
        out[:] = np.asarray(pixel_mean, np.float32)[:, None, None]
    if geo.needs_resize:
        (h, w), aa = geo.image_size, antialias and nh < geo.image_size[0]
        # Rows, then columns, each a sparse (n_out, n_in) matrix of the taps. torch runs the
        # columns first; the other order differs by float rounding only (max 4.6e-5) and costs
        # less when shrinking. (nh, w * 3) -> (w, nh * 3) -> (nw, nh, 3).
        x = resize_matrix(h, nh, aa) @ image.reshape(h, w * 3).astype(np.float32)
        x = x.reshape(nh, w, 3).transpose(1, 0, 2).reshape(w, nh * 3)
        x = (resize_matrix(w, nw, aa) @ x).reshape(nw, nh, 3).transpose(2, 1, 0)
        np.clip(x, 0, 255, out=x)
    else:
        x = image.transpose(2, 0, 1)
    out[:, :nh, :nw] = x[::-1] if channel_order == "bgr" else x
    return out


@functools.lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int, antialias: bool) -> sparse.csr_matrix:
    """The 1-D resize of :func:`resample_taps` as an (n_out, n_in) float32 CSR matrix (taps in
    order, so each output sums them as torch does)."""
    idx, w = resample_taps(n_in, n_out, antialias)
    k = idx.shape[1]
    m = sparse.csr_matrix((w.ravel(), idx.ravel(), np.arange(0, n_out * k + 1, k)),
                          shape=(n_out, n_in))
    m.sum_duplicates()  # taps clipped at the edge repeat an index, with weight 0
    return m


def resample_taps(n_in: int, n_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n_out, K) source indices and float32 weights of a 1-D bilinear resize, as
    ``F.interpolate(mode="bilinear", align_corners=False)`` computes them; with ``antialias``
    its triangle filter widened by the shrink factor (weights normalised, taps past the edge
    dropped)."""
    scale = n_in / n_out
    if not antialias:
        # scale * (i + 0.5) - 0.5 rounded once to float32, as torch's fused multiply-add
        src = np.maximum((np.float64(np.float32(scale)) * (np.arange(n_out) + 0.5) - 0.5)
                         .astype(np.float32), np.float32(0))
        i0 = np.minimum(src.astype(np.int64), n_in - 1)
        frac = (src - i0).astype(np.float32)
        i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
        return np.stack([i0, i1], 1), np.stack([1 - frac, frac], 1).astype(np.float32)
    # torch's float32 steps: centre, support and the filter's argument rounded as it rounds them
    f32 = np.float32
    scale = f32(scale)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0 / np.float64(scale)) if scale >= 1.0 else f32(1.0)
    centre = (np.float64(scale) * (np.arange(n_out) + 0.5)).astype(f32)
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    k = int((hi - lo).max())
    idx = lo[:, None] + np.arange(k)[None, :]
    arg = (((idx.astype(f32) - centre[:, None]).astype(np.float64) + 0.5) * invscale).astype(f32)
    w = np.where(np.abs(arg) < 1.0, f32(1.0) - np.abs(arg), f32(0.0)).astype(f32)
    w[idx >= hi[:, None]] = 0.0
    total = np.zeros(n_out, f32)
    for j in range(k):  # summed in tap order, float32
        total += w[:, j]
    w = np.where(total[:, None] != 0, w / np.where(total != 0, total, f32(1.0))[:, None], f32(0))
    return np.minimum(idx, n_in - 1), w.astype(np.float32)


def upsample_masks(masks: np.ndarray, geo: Geometry) -> np.ndarray:
    """(N, h, w) masks at the model's output resolution (covering the padded input) ->
    (N, H, W) float32 in [0, 1] on the caller's image (bilinear; threshold at 0.5 for a mask)."""
    n, h, w = masks.shape
    if n == 0:
        return np.zeros((0, *geo.image_size), np.float32)
    big_h, big_w = geo.output_frame_size(h, w)
    out_h, out_w = geo.image_size
    y0, y1, fy = bilinear_taps(h, big_h, out_h)
    x0, x1, fx = bilinear_taps(w, big_w, out_w)
    m = masks.astype(np.float32)
    mid = (1 - fx) * m[:, :, x0] + fx * m[:, :, x1]
    return (1 - fy)[:, None] * mid[:, y0] + fy[:, None] * mid[:, y1]


def bilinear_taps(n_in: int, n_out: int, n_keep: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 (int64) and float32 weight of i1 for the first n_keep of n_out
    output pixels, as F.interpolate(mode="bilinear", align_corners=False) computes them."""
    scale = np.float32(n_in / n_out)
    dst = np.arange(n_keep, dtype=np.float32)
    src = np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    frac = (src - i0.astype(np.float32)).astype(np.float32)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, frac


def upsample_labels(labels: np.ndarray, geo: Geometry) -> np.ndarray:
    """(L, h, w) int label maps at the model's output resolution (-1 = none, instances >= 0,
    covering the padded input) -> (L, H, W) on the caller's image.

    Same result as upsampling every instance's mask bilinearly and keeping p > 0.5 (as
    :func:`upsample_masks`), but in O(L H W) whatever the number of instances: the masks of a
    label map are disjoint, so their bilinear values sum to <= 1 and at most one exceeds 0.5;
    it is found among the 4 source pixels of each output pixel.
    """
    n_frames, h, w = labels.shape
    big_h, big_w = geo.output_frame_size(h, w)
    out_h, out_w = geo.image_size
    y0, y1, fy = bilinear_taps(h, big_h, out_h)
    x0, x1, fx = bilinear_taps(w, big_w, out_w)
    # The 4 taps of an output pixel are the 2x2 block at (y0, x0) (edge replicated). Where that
    # block holds one label (almost everywhere) it is the answer; only at mask borders are the
    # bilinear weights of equal taps summed.
    below = np.concatenate([labels[:, 1:], labels[:, -1:]], axis=1)
    right = np.concatenate([labels[:, :, 1:], labels[:, :, -1:]], axis=2)
    diag = np.concatenate([below[:, :, 1:], below[:, :, -1:]], axis=2)
    mixed_small = (labels != below) | (labels != right) | (labels != diag)
    out = labels[:, y0][:, :, x0]
    mixed = mixed_small[:, y0][:, :, x0]
    tt, yy, xx = np.nonzero(mixed)
    if tt.size == 0:
        return out
    wy, wx = fy[yy], fx[xx]
    weights = [(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx]
    ya, yb, xa, xb = y0[yy], y1[yy], x0[xx], x1[xx]
    tk = [labels[tt, ya, xa], labels[tt, ya, xb], labels[tt, yb, xa], labels[tt, yb, xb]]
    res = np.full_like(tk[0], -1)
    for c in range(4):
        total = sum(wk * (t == tk[c]) for wk, t in zip(weights, tk))
        res = np.where((total > 0.5) & (tk[c] >= 0), tk[c], res)
    out[tt, yy, xx] = res
    return out
