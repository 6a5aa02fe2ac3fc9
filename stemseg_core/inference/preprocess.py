"""Resizing/padding of camera images for the model, and mapping of outputs back to the image.

The model needs H, W multiples of 32. An image of size (H, W) is resized (aspect kept) so that its
shorter side is ``min_side`` unless that makes the longer side exceed ``max_side`` (then the
longer side is ``max_side``) - rounded half to even, as the authors' Python ``round`` - and 0
disables either limit. The resized image (nh, nw) is then padded
at the bottom/right to (Hp, Wp), multiples of 32, with the model's pixel mean (so padding is 0
after the model's normalisation). Model outputs come at 1/4 of (Hp, Wp).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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


def prepare_frame(image: np.ndarray, geo: Geometry, pixel_mean: list[float],
                  device: torch.device | str = "cpu", *, channel_order: str = "rgb",
                  antialias: bool = True) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, Hp, Wp) float32 0..255 on `device`, resized (bilinear,
    align_corners False; antialiased when shrinking unless ``antialias`` is False, as the
    authors) and padded. ``channel_order`` "bgr" swaps the channels for models trained on cv2
    images (the authors'); ``pixel_mean`` is in that order."""
    t = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    t = t.permute(2, 0, 1).float()
    if channel_order == "bgr":
        t = t.flip(0)
    elif channel_order != "rgb":
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if geo.needs_resize:
        nh, nw = geo.resized_size
        down = antialias and nh < geo.image_size[0]
        t = F.interpolate(t[None], size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=down)[0].clamp_(0, 255)
    hp, wp = geo.padded_size
    nh, nw = geo.resized_size
    if (hp, wp) != (nh, nw):
        out = torch.empty((3, hp, wp), dtype=t.dtype, device=t.device)
        out[:] = torch.tensor(pixel_mean, dtype=t.dtype, device=t.device)[:, None, None]
        out[:, :nh, :nw] = t
        t = out
    return t


def upsample_masks(masks: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """(N, h, w) masks at the model's output resolution (covering the padded input) ->
    (N, H, W) float in [0, 1] on the caller's image (bilinear; threshold at 0.5 for a mask)."""
    if masks.shape[0] == 0:
        return torch.zeros((0, *geo.image_size), device=masks.device)
    size = geo.output_frame_size(masks.shape[-2], masks.shape[-1])
    up = F.interpolate(masks[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    h, w = geo.image_size
    return up[:, :h, :w]


def bilinear_taps(n_in: int, n_out: int, n_keep: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices i0, i1 and weight of i1 for the first n_keep of n_out output pixels, as
    F.interpolate(mode="bilinear", align_corners=False) computes them."""
    scale = n_in / n_out
    dst = torch.arange(n_keep, dtype=torch.float32, device=device)
    src = ((dst + 0.5) * scale - 0.5).clamp_(min=0)
    i0 = src.floor().long().clamp_(max=n_in - 1)
    frac = src - i0.float()
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, frac


def upsample_labels(labels: torch.Tensor, geo: Geometry) -> torch.Tensor:
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
    dev = labels.device
    y0, y1, fy = bilinear_taps(h, big_h, out_h, dev)
    x0, x1, fx = bilinear_taps(w, big_w, out_w, dev)
    # The 4 taps of an output pixel are the 2x2 block at (y0, x0) (edge replicated). Where that
    # block holds one label (almost everywhere) it is the answer; only at mask borders are the
    # bilinear weights of equal taps summed.
    below = torch.cat([labels[:, 1:], labels[:, -1:]], dim=1)
    right = torch.cat([labels[:, :, 1:], labels[:, :, -1:]], dim=2)
    diag = torch.cat([below[:, :, 1:], below[:, :, -1:]], dim=2)
    mixed_small = (labels != below) | (labels != right) | (labels != diag)
    out = labels.index_select(1, y0).index_select(2, x0)
    mixed = mixed_small.index_select(1, y0).index_select(2, x0)
    where = mixed.nonzero(as_tuple=True)
    if where[0].numel() == 0:
        return out
    tt, yy, xx = where
    wy, wx = fy[yy], fx[xx]
    weights = [(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx]
    ya, yb, xa, xb = y0[yy], y1[yy], x0[xx], x1[xx]
    tk = [labels[tt, ya, xa], labels[tt, ya, xb], labels[tt, yb, xa], labels[tt, yb, xb]]
    res = torch.full_like(tk[0], -1)
    for c in range(4):
        total = sum(wk * (t == tk[c]) for wk, t in zip(weights, tk))
        res = torch.where((total > 0.5) & (tk[c] >= 0), tk[c], res)
    out[where] = res
    return out
