"""Mask <-> run-length encodings used by the message contract and KITTI MOTS files.

- *counts*: COCO uncompressed RLE, the `mask_counts` field of TrackedInstance: run lengths of
  alternating 0/1 over the mask in column-major order, starting with a (possibly empty) 0-run.
- *KITTI string*: the compressed COCO RLE string of KITTI MOTS `instances_txt` lines
  (pycocotools' own encoding; decoding goes through pycocotools too).
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


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


def counts_to_mask(counts: np.ndarray | list[int], height: int, width: int) -> np.ndarray:
    """Inverse of :func:`mask_to_counts`. Raises ValueError when the runs do not sum to H*W."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total != height * width:
        raise ValueError(f"RLE runs sum to {total} pixels but the image has "
                         f"{height}x{width}={height * width}")
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()


def mask_to_kitti_string(mask: np.ndarray) -> str:
    """(H, W) bool -> compressed COCO RLE string as written in KITTI MOTS instances_txt."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return rle["counts"].decode("ascii")


def kitti_string_to_mask(rle: str, height: int, width: int) -> np.ndarray:
    """Compressed COCO RLE string (KITTI MOTS) -> (H, W) bool."""
    m = mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")})
    return m.astype(bool)


def kitti_string_area(rle: str, height: int, width: int) -> int:
    """Pixel count of a KITTI MOTS RLE string, without decoding the mask."""
    return int(mask_utils.area({"size": [height, width], "counts": rle.encode("ascii")}))


def counts_to_kitti_string(counts: np.ndarray | list[int], height: int, width: int) -> str:
    """Message `mask_counts` -> KITTI MOTS string, via pycocotools in one call."""
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]},
                                 height, width)
    return rle["counts"].decode("ascii")
