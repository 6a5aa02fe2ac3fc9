"""What the image decoders share: their errors and the checks of sizes, buffers and RGB input
(image_codec.py: raw images; compressed_image.py: jpeg / png)."""
from __future__ import annotations

import numpy as np


class ImageDecodeError(ValueError):
    """An image cannot be decoded or encoded; the message names encoding, size, step and fix."""


class ImageTooLarge(ImageDecodeError):
    """An image has more pixels than the caller's limit (``max_pixels``, the node's
    ``max_image_pixels``); raised before the image is decoded or any pixel buffer allocated.
    ``height``, ``width`` and ``limit`` say by how much."""

    def __init__(self, what: str, height: int, width: int, limit: int):
        self.height, self.width, self.limit = int(height), int(width), int(limit)
        super().__init__(
            f"{what} image {self.width}x{self.height} ({self.width * self.height} pixels) is "
            f"over the limit of {self.limit} pixels (max_image_pixels); refused before "
            f"decoding. Send smaller images or raise max_image_pixels")


def check_pixels(what: str, height: int, width: int, max_pixels: int | None) -> None:
    """:class:`ImageTooLarge` when ``height * width`` is over ``max_pixels`` (None = no limit)."""
    if max_pixels is not None and height * width > max_pixels:
        raise ImageTooLarge(what, height, width, max_pixels)


def as_bytes(data) -> np.ndarray:
    """Message data (bytes, bytearray, memoryview, array.array, numpy array or a list of ints)
    as a flat uint8 array, without a copy where the buffer allows."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain sequence of byte values
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def cv_reason(e: Exception) -> str:
    """The last line of an OpenCV error (its message without the source location), short."""
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:200]


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageDecodeError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} "
                               f"{rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageDecodeError(f"empty image {rgb.shape[1]}x{rgb.shape[0]}")
    return np.ascontiguousarray(rgb)


def top8(img: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 keeping the 8 most significant bits; uint8 unchanged."""
    return (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img


__all__ = ["ImageDecodeError", "ImageTooLarge", "as_bytes", "check_pixels", "check_rgb",
           "cv_reason", "top8"]
