"""Compressed images (``sensor_msgs/CompressedImage``): jpeg / png decoded by content with a
size limit read from the header, optionally at a reduced JPEG scale, and encoded (see the
image_codec.py docstring for the whole codec)."""
from __future__ import annotations

import cv2
import numpy as np

from stemseg_core.data.image_checks import (
    ImageDecodeError,
    check_pixels,
    check_rgb,
    cv_reason,
    top8,
)

COMPRESSED_FORMATS = ("jpeg", "png")
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG frame-header (SOFn) markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Marker segments read before giving up on finding the frame header (real files have < 30).
_JPEG_MAX_SEGMENTS = 1024
#: Reduced-scale JPEG decoding: denominator -> OpenCV flag (largest reduction first).
_JPEG_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                 (2, cv2.IMREAD_REDUCED_COLOR_2))
#: Bytes at the end of a jpeg in which its end-of-image marker must appear (encoders may pad).
_JPEG_TAIL = 64
_DEFAULT_JPEG_QUALITY = 95


# --------------------------------------------------------------------------------------------
# Compressed images


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header (SOFn), walking the marker segments before
    it; None when there is none before the scan data, or the data ends first."""
    i, n = 2, len(raw)
    for _ in range(_JPEG_MAX_SEGMENTS):
        if i + 2 > n or raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        i += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if marker in (0xD8, 0xD9, 0xDA) or i + 2 > n:  # SOI again, EOI, scan before a frame
            return None
        length = int.from_bytes(raw[i:i + 2], "big")
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if length < 8 or i + 7 > n:
                return None
            height = int.from_bytes(raw[i + 3:i + 5], "big")
            width = int.from_bytes(raw[i + 5:i + 7], "big")
            return (height, width) if height and width else None
        i += length
    return None


def _png_size(raw: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR chunk (which must come first); None if absent."""
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    return (height, width) if height and width else None


def _compressed_kind(raw: bytes) -> str | None:
    if raw[:3] == _JPEG_SOI + b"\xff":
        return "jpeg"
    if raw[:8] == _PNG_SIGNATURE:
        return "png"
    return None


def compressed_size(fmt: str, data) -> tuple[int, int] | None:
    """(height, width) of a jpeg / png from its header, without decoding anything; None when
    the data is neither or its header is unreadable. The data's content decides the format;
    ``fmt`` (the message's format string) is not needed and only kept for symmetry with
    :func:`decode_compressed`."""
    raw = data if isinstance(data, bytes) else bytes(data)
    kind = _compressed_kind(raw)
    if kind == "jpeg":
        return _jpeg_size(raw)
    if kind == "png":
        return _png_size(raw)
    return None


def _jpeg_reduction(height: int, width: int, min_size: tuple[int, int]) -> int:
    """Denominator of the smallest JPEG scale whose output (ceil(side / k)) still covers
    ``min_size`` (h, w); 1 = full size."""
    min_h, min_w = min_size
    for k, _ in _JPEG_REDUCED:
        if -(-height // k) >= min_h and -(-width // k) >= min_w:
            return k
    return 1


def decode_compressed(fmt: str, data, *, max_pixels: int | None = None,
                      min_size: tuple[int, int] | None = None) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg or png; colour, grey or 16-bit) -> (H, W, 3) uint8
    RGB. ``fmt`` is the message's format string; the data is decoded by its content.

    ``max_pixels``: the width x height in the header must not exceed it, else
    :class:`ImageTooLarge` is raised before decoding (None = no limit of ours; OpenCV's own
    CV_IO_MAX_IMAGE_PIXELS still applies). ``min_size`` (h, w): a JPEG is decoded at the
    smallest of 1/2, 1/4, 1/8 scale whose result is still at least ``h`` x ``w`` (each side
    ceil(side / k)); the result then equals a full decode resized (INTER_AREA) to that size
    within JPEG's rounding. PNG, and JPEG that cannot be reduced, decode at full size.
    """
    fmt = fmt or "?"
    if min_size is not None:
        if len(min_size) != 2 or any(int(v) < 0 for v in min_size):
            raise ValueError(f"min_size must be (height, width) >= 0, got {min_size!r}")
        min_size = (int(min_size[0]), int(min_size[1]))
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(f"compressed format {fmt[:60]!r} (depth images) is not "
                               f"supported; send jpeg or png colour images")
    raw = data if isinstance(data, bytes) else bytes(data)
    if not raw:
        raise ImageDecodeError(f"empty CompressedImage (format {fmt[:60]!r}, 0 bytes)")
    kind = _compressed_kind(raw)
    if kind is None:
        raise ImageDecodeError(f"cannot decode CompressedImage ({len(raw)} bytes, format "
                               f"{fmt[:60]!r}, starts with {raw[:4].hex()}): not jpeg/png "
                               f"(or corrupted data)")
    size = _jpeg_size(raw) if kind == "jpeg" else _png_size(raw)
    if size is None:
        raise ImageDecodeError(f"corrupted {kind} ({len(raw)} bytes, format {fmt[:60]!r}): no "
                               f"readable width/height in its header; the data is truncated "
                               f"or damaged")
    height, width = size
    check_pixels(kind, height, width, max_pixels)
    if kind == "jpeg" and _JPEG_EOI not in raw[-_JPEG_TAIL:]:
        raise ImageDecodeError(f"corrupted jpeg ({len(raw)} bytes, format {fmt[:60]!r}): no "
                               f"end-of-image marker, the data is truncated")
    flags = cv2.IMREAD_UNCHANGED  # (ignores EXIF orientation, as the reduced decode below)
    if kind == "jpeg" and min_size is not None:
        k = _jpeg_reduction(height, width, min_size)
        if k > 1:
            flags = dict(_JPEG_REDUCED)[k] | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), flags)
    except cv2.error as e:
        raise ImageDecodeError(f"cannot decode {kind} {width}x{height} ({len(raw)} bytes, "
                               f"format {fmt[:60]!r}): {cv_reason(e)}") from None
    if img is None or img.size == 0:
        raise ImageDecodeError(f"cannot decode {kind} {width}x{height} ({len(raw)} bytes, "
                               f"format {fmt[:60]!r}): corrupted data")
    if img.shape[0] > height or img.shape[1] > width:  # the decoder disagrees with the header
        raise ImageDecodeError(f"corrupted {kind}: decoded {img.shape[1]}x{img.shape[0]}, its "
                               f"header says {width}x{height}")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(f"decoded {fmt[:60]!r} image has unsupported depth {img.dtype}; "
                               f"send 8- or 16-bit jpeg/png")
    img = top8(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] != 3:
        raise ImageDecodeError(f"decoded {kind} image has {img.shape[2]} channels; send grey, "
                               f"colour or colour + alpha jpeg/png")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def compress_array(img: np.ndarray, fmt: str = "png", *,
                   quality: int = _DEFAULT_JPEG_QUALITY) -> bytes:
    """Grey (H, W) or RGB(A) (H, W, 3|4) uint8/uint16 array -> jpeg/png bytes (OpenCV, which
    stores colour as BGR). 16-bit is kept by png; jpeg takes uint8 only."""
    if fmt not in COMPRESSED_FORMATS:
        raise ImageDecodeError(f"compressed format {fmt!r} is not one of {COMPRESSED_FORMATS}")
    img = np.asarray(img)
    if img.dtype not in (np.uint8, np.uint16) or (fmt == "jpeg" and img.dtype != np.uint8):
        raise ImageDecodeError(f"cannot write a {img.dtype} image as {fmt} (png takes uint8 "
                               f"or uint16, jpeg uint8)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    elif img.ndim != 2:
        raise ImageDecodeError(f"cannot write an image of shape {img.shape} as {fmt}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", img, params)
    if not ok:
        raise ImageDecodeError(f"OpenCV could not encode a {img.shape} image as {fmt}")
    return buf.tobytes()


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", *,
                      quality: int = _DEFAULT_JPEG_QUALITY) -> bytes:
    """(H, W, 3) uint8 RGB -> jpeg or png bytes (``quality`` for jpeg, 0-100)."""
    return compress_array(check_rgb(rgb), fmt, quality=quality)


def compressed_format_string(fmt: str, encoding: str = "rgb8") -> str:
    """``CompressedImage.format`` as image_transport writes it, e.g. "rgb8; jpeg compressed
    bgr8" (OpenCV stores colour as BGR; grey stays as it is)."""
    stored = encoding.replace("rgb", "bgr")
    return f"{encoding}; {fmt} compressed {stored}"


__all__ = ["COMPRESSED_FORMATS", "compress_array", "compressed_format_string", "compressed_size",
           "decode_compressed", "encode_compressed"]
