"""Chroma low-pass at the network's input (``model.chroma_lowpass``; not in the paper).

Cameras deliver colour at a lower resolution than brightness: image_transport's JPEG (quality
95, 4:2:0), V4L2's UYVY (4:2:2), NV12 (4:2:0). A model trained on full-resolution colour sees
each of them as a different image (docs/robustness.md: about -2 HOTA for the shipped demo
model). With a factor f > 1 the network first keeps the luma (BT.601 Y) of every pixel and the
chroma only at 1/f resolution, so lossless, JPEG and YUV frames reach the backbone nearly alike.

In YCbCr the inverse transform's luma column is (1, 1, 1), so replacing the chroma by its
low-pass is, in RGB: ``out = LP(x) + (Y(x) - LP(Y(x)))`` for every channel, LP = average over
f x f blocks upsampled bilinearly (align_corners False). Linear, so it exports as three ops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: BT.601 luma weights of R, G, B.
LUMA_RGB = (0.299, 0.587, 0.114)


def luma_weights(channel_order: str) -> tuple[float, float, float]:
    """Luma weights in the model's channel order ("rgb" or "bgr")."""
    return LUMA_RGB if channel_order == "rgb" else LUMA_RGB[::-1]


def chroma_lowpass(x: torch.Tensor, factor: int, weights: tuple[float, float, float]
                   ) -> torch.Tensor:
    """x (N, 3, H, W) pixel values, H and W multiples of ``factor`` -> same shape: luma kept
    per pixel, chroma averaged over factor x factor blocks. factor 1 returns x."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    low = F.interpolate(F.avg_pool2d(x, factor), size=(h, w), mode="bilinear",
                        align_corners=False)
    wt = x.new_tensor(weights).view(1, 3, 1, 1)
    detail = ((x - low) * wt).sum(1, keepdim=True)
    return low + detail
