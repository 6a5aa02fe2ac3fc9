"""Mask <-> run-length encodings used by the message contract and KITTI MOTS files.

- *counts*: COCO uncompressed RLE, the `mask_counts` field of TrackedInstance: run lengths of
  alternating 0/1 over the mask in column-major order, starting with a (possibly empty) 0-run.
- *KITTI string*: the compressed COCO RLE string of KITTI MOTS `instances_txt` lines
  (pycocotools' own encoding; decoding goes through pycocotools too).

Masks come from messages and files others wrote, so decoding checks the sizes before it
allocates: height and width non-negative with at most ``max_pixels`` pixels (default
:data:`MAX_MASK_PIXELS`), runs non-negative integers summing to exactly height x width.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

#: Most pixels a decoded mask may have unless the caller allows more: 8K UHD (7680x4320,
#: 33 MB as bool). A mask claiming more is refused before anything is allocated.
MAX_MASK_PIXELS = 7680 * 4320


def _check_size(height: int, width: int, max_pixels: int | None) -> tuple[int, int]:
    try:
        h, w = int(height), int(width)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"mask size must be two integers, got {height!r} x {width!r}") from None
    if h < 0 or w < 0:
        raise ValueError(f"mask size {h}x{w} (height x width) is negative")
    if max_pixels is not None and h * w > max_pixels:
        raise ValueError(f"mask size {h}x{w} = {h * w} pixels is over the limit of "
                         f"{max_pixels} (max_pixels); refusing to allocate it")
    return h, w


def _check_counts(counts, height: int, width: int) -> np.ndarray:
    """``counts`` as an int64 array after checking: 1-D integers, none negative, at most
    H*W + 1 of them, summing to exactly H*W."""
    try:
        arr = np.asarray(counts)
        if arr.dtype.kind not in "iu":  # also refuses object arrays of huge Python ints
            raise TypeError(arr.dtype)
        arr = arr.astype(np.int64)  # uint64 over 2**63 wraps negative: refused below
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"RLE counts must be a flat sequence of non-negative integers, got "
                         f"{type(counts).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"RLE counts must be 1-D, got shape {arr.shape}")
    n = height * width
    if arr.size > n + 1:
        raise ValueError(f"RLE has {arr.size} runs, more than a {height}x{width} mask can have "
                         f"({n + 1})")
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"RLE run {int(np.argmin(arr))} is negative ({int(arr.min())})")
    if arr.size and int(arr.max()) > n:
        raise ValueError(f"RLE run {int(np.argmax(arr))} ({int(arr.max())}) is longer than "
                         f"the {height}x{width} mask")
    # exact when it cannot wrap (n * (n + 1) < 2**63); the float sum catches a wrapped one
    total = int(arr.sum())
    if total != n or abs(float(arr.sum(dtype=np.float64)) - n) > 1e-6 * n + 1:
        raise ValueError(f"RLE runs sum to {float(arr.sum(dtype=np.float64)):.0f} pixels but "
                         f"the image has {height}x{width}={n}")
    return arr


def mask_to_counts(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> uint32 run lengths, column-major, first run = background (may be 0)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def counts_to_mask(counts: np.ndarray | list[int], height: int, width: int, *,
                   max_pixels: int | None = MAX_MASK_PIXELS) -> np.ndarray:
    """Inverse of :func:`mask_to_counts`. Raises ValueError, before allocating the mask, when
    height/width are negative or have more than ``max_pixels`` pixels (None = no limit), or
    the runs are not non-negative integers summing to exactly H*W."""
    height, width = _check_size(height, width, max_pixels)
    counts = _check_counts(counts, height, width)
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()


def mask_to_kitti_string(mask: np.ndarray) -> str:
    """(H, W) bool -> compressed COCO RLE string as written in KITTI MOTS instances_txt."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return rle["counts"].decode("ascii")


def kitti_string_to_mask(rle: str, height: int, width: int, *,
                         max_pixels: int | None = MAX_MASK_PIXELS) -> np.ndarray:
    """Compressed COCO RLE string (KITTI MOTS) -> (H, W) bool; a size over ``max_pixels`` is
    refused (ValueError) before decoding."""
    height, width = _check_size(height, width, max_pixels)
    m = mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")})
    return m.astype(bool)


def kitti_string_area(rle: str, height: int, width: int) -> int:
    """Pixel count of a KITTI MOTS RLE string, without decoding the mask."""
    return int(mask_utils.area({"size": [height, width], "counts": rle.encode("ascii")}))
