"""Drawing of tracked instances: colour overlays and contact sheets.

Pure numpy/OpenCV and cheap enough to run per frame in the ROS node (``~/overlay`` and
``~/track_ids`` topics) as well as in ``stemseg infer --overlays``.

Conventions: input camera images are RGB (what the tracker is fed), drawn images are BGR (what
OpenCV writes and what ROS ``bgr8`` images carry).
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # instances are read by attribute only
    from stemseg_core.inference.types import TrackedInstance

_GOLDEN = 0.6180339887498949


@lru_cache(maxsize=4096)
def track_colour(track_id: int) -> tuple[int, int, int]:
    """Deterministic, well-separated (b, g, r) colour for a track ID.

    Hues step by the golden ratio so consecutive IDs get far-apart hues; saturation and value
    alternate over three levels so IDs whose hues nearly repeat still differ.
    """
    tid = int(track_id)
    hue = (tid * _GOLDEN) % 1.0
    sat = (0.95, 0.75, 0.55)[tid % 3]
    val = (0.95, 0.80, 1.0)[(tid // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (int(round(b * 255)), int(round(g * 255)), int(round(r * 255)))


def _draw_order(instances: Sequence[TrackedInstance]) -> list[TrackedInstance]:
    """Lowest score first, so that higher-scoring instances end up on top where masks overlap."""
    return sorted(instances, key=lambda inst: float(inst.score))


def _label_text(inst: TrackedInstance) -> str:
    return f"{inst.track_id} {inst.class_name} {float(inst.score):.2f}"


def draw_overlay(image_rgb: np.ndarray, instances: Sequence[TrackedInstance],
                 alpha: float = 0.5, contours: bool = True, labels: bool = True) -> np.ndarray:
    """Blend each instance's mask into the image in its track colour; returns (H, W, 3) uint8 BGR.

    Each instance also gets its outline drawn (``contours``) and an "ID class score" label at
    the top-left of its box (``labels``).
    """
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image_rgb.shape}")
    if image_rgb.dtype != np.uint8:
        image_rgb = np.clip(image_rgb, 0, 255).astype(np.uint8)
    h, w = image_rgb.shape[:2]
    out = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    order = _draw_order(instances)
    if not order:
        return out
    # One label image (index into `order`, 0 = none) and a colour lookup table: one blend pass.
    label = np.zeros((h, w), dtype=np.int32)
    lut = np.zeros((len(order) + 1, 3), dtype=np.float32)
    for i, inst in enumerate(order, start=1):
        mask = np.asarray(inst.mask, dtype=bool)
        if mask.shape != (h, w):
            raise ValueError(f"track {inst.track_id}: mask shape {mask.shape} != image size "
                             f"{(h, w)}")
        label[mask] = i
        lut[i] = track_colour(inst.track_id)
    fg = label > 0
    if fg.any():
        a = float(np.clip(alpha, 0.0, 1.0))
        blended = out[fg].astype(np.float32) * (1.0 - a) + lut[label[fg]] * a
        out[fg] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.3, min(h, w) / 800.0)
    thickness = 1 if scale < 0.8 else 2
    for i, inst in enumerate(order, start=1):
        x, y, bw, bh = inst.bbox()
        if bw == 0:
            continue
        colour = track_colour(inst.track_id)
        if contours:
            # Contours of the visible part only, found in the box crop (cheap for small objects).
            crop = (label[y:y + bh, x:x + bw] == i).astype(np.uint8)
            cnts, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                       offset=(x, y))
            cv2.drawContours(out, cnts, -1, colour, 1, lineType=cv2.LINE_AA)
        if labels:
            text = _label_text(inst)
            (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
            ty = max(y, th + base)
            tx = min(max(x, 0), max(w - tw, 0))
            cv2.rectangle(out, (tx, ty - th - base), (tx + tw, ty), colour, -1)
            luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
            ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
            cv2.putText(out, text, (tx, ty - base), font, scale, ink, thickness, cv2.LINE_AA)
    return out


def contact_sheet(images_bgr: Sequence[np.ndarray], cols: int = 4, tile_width: int | None = 320,
                  pad: int = 2, background: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Tile images into a grid: each resized to ``tile_width`` (aspect kept; None = the first
    image's width, so equal-sized images are not resized), ``cols`` per row, ``pad`` pixels of
    ``background`` around every tile.

    Grey images are converted to BGR. Returns a uint8 BGR image.
    """
    if len(images_bgr) == 0:
        raise ValueError("contact_sheet needs at least one image")
    if tile_width is None:
        tile_width = int(np.asarray(images_bgr[0]).shape[1])
    if cols < 1 or tile_width < 1 or pad < 0:
        raise ValueError(f"cols and tile_width must be >= 1 and pad >= 0, got {cols}, "
                         f"{tile_width}, {pad}")
    tiles = []
    for img in images_bgr:
        img = np.asarray(img)
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if img.shape[1] != tile_width:
            th = max(1, int(round(img.shape[0] * tile_width / max(img.shape[1], 1))))
            interp = cv2.INTER_AREA if tile_width < img.shape[1] else cv2.INTER_LINEAR
            img = cv2.resize(img, (tile_width, th), interpolation=interp)
        tiles.append(img)
    cols = min(cols, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    tile_h = max(t.shape[0] for t in tiles)
    sheet = np.empty((rows * tile_h + (rows + 1) * pad, cols * tile_width + (cols + 1) * pad, 3),
                     dtype=np.uint8)
    sheet[:] = background
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        y0 = pad + r * (tile_h + pad)
        x0 = pad + c * (tile_width + pad)
        sheet[y0:y0 + t.shape[0], x0:x0 + tile_width] = t
    return sheet
