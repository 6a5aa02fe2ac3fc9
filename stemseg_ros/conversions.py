"""Message <-> numpy conversions of the perception node (no ROS `cv_bridge` needed).

Images:
- :func:`image_to_array` / :func:`array_to_image` convert sensor_msgs/Image <-> numpy in the
  image's own layout (rgb8, bgr8, rgba8, bgra8, mono8/8UC1, mono16/16UC1), honouring `step`
  padding and `is_bigendian`.
- :func:`image_to_rgb` / :func:`compressed_to_rgb` give what the tracker eats: (H, W, 3) uint8 RGB.
  mono16 keeps its 8 most significant bits (value >> 8).
- :func:`rgb_to_compressed` encodes jpeg/png (tests, bag tools).

Results:
- :func:`frame_result_to_msg` / :func:`msg_to_frame_result`: stemseg_core FrameResult <->
  stemseg_ros/TrackedInstanceArray, masks as COCO uncompressed RLE (`mask_counts`).

Every failure raises :class:`ConversionError` with the encoding, sizes and what to do; the node
logs it, counts it and drops the frame.
"""
from __future__ import annotations

import array
from collections.abc import Sequence

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from stemseg_core.data.rle import counts_to_mask, mask_to_counts
from stemseg_core.inference.types import FrameResult, TrackedInstance
from stemseg_ros.msg import TrackedInstance as TrackedInstanceMsg
from stemseg_ros.msg import TrackedInstanceArray

#: encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
}
COMPRESSED_FORMATS = ("jpeg", "png")
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


class ConversionError(ValueError):
    """An image message cannot be converted (encoding, size or data); the message says why."""


# --------------------------------------------------------------------------------------------
# Images


def image_to_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, C) or (H, W) array in the message's own encoding and dtype.

    The result is a read-only view on the message data when no copy is needed.
    """
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{enc}'; supported: "
                              f"{', '.join(ENCODINGS)} (or use image/compressed with jpeg/png)")
    dtype, ch = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError(f"empty {enc} image: {w}x{h}")
    row = w * ch * dtype.itemsize
    if step < row:
        raise ConversionError(f"{enc} image {w}x{h}: step {step} is smaller than a row "
                              f"({w} px * {ch * dtype.itemsize} B = {row} B)")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < step * h:
        raise ConversionError(f"{enc} image {w}x{h} (step {step}) needs {step * h} bytes of data, "
                              f"got {buf.size}: truncated or wrong width/height/step")
    rows = buf[:step * h].reshape(h, step)[:, :row]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    out = np.ascontiguousarray(rows).view(wire).reshape((h, w, ch) if ch > 1 else (h, w))
    if out.dtype != dtype:
        out = out.astype(dtype)
    return out


def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """numpy image in `encoding`'s layout -> sensor_msgs/Image (little endian, no padding)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{encoding}'; supported: "
                              f"{', '.join(ENCODINGS)}")
    dtype, ch = ENCODINGS[encoding]
    arr = np.asarray(arr)
    want = "(H, W)" if ch == 1 else f"(H, W, {ch})"
    if arr.dtype != dtype or arr.ndim != (2 if ch == 1 else 3) or (ch > 1 and arr.shape[2] != ch):
        raise ConversionError(f"{encoding} needs a {want} {dtype} array, got {arr.shape} "
                              f"{arr.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * ch * dtype.itemsize)
    data = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    msg.data = array.array("B", data.tobytes())
    return msg


def to_rgb(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Array in `encoding`'s layout -> contiguous (H, W, 3) uint8 RGB."""
    if encoding == "rgb8":
        return np.ascontiguousarray(arr)
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2RGB)
    if encoding in ("mono16", "16UC1"):
        return cv2.cvtColor((arr >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    raise ConversionError(f"unsupported image encoding '{encoding}'; supported: "
                          f"{', '.join(ENCODINGS)}")


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image in any supported encoding -> (H, W, 3) uint8 RGB."""
    return to_rgb(image_to_array(msg), msg.encoding)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png; colour, grey or 16-bit) -> (H, W, 3) uint8 RGB."""
    fmt = msg.format or "?"
    if "compresseddepth" in fmt.lower():
        raise ConversionError(f"compressed format '{fmt}' (depth images) is not supported; "
                              f"send jpeg or png colour images")
    data = bytes(msg.data)
    if not data:
        raise ConversionError(f"empty CompressedImage (format '{fmt}')")
    if data[:2] == _JPEG_SOI and _JPEG_EOI not in data[-64:]:
        raise ConversionError(f"corrupted jpeg ({len(data)} bytes, format '{fmt}'): no end-of-"
                              f"image marker, the data is truncated")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ConversionError(f"cannot decode CompressedImage ({len(data)} bytes, format "
                              f"'{fmt}', starts with {data[:4].hex()}): corrupted data or not "
                              f"jpeg/png")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ConversionError(f"decoded {fmt} image has unsupported depth {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "png", header: Header | None = None,
                      jpeg_quality: int = 95) -> CompressedImage:
    """(H, W, 3) uint8 RGB -> sensor_msgs/CompressedImage (jpeg or png, bgr8 inside)."""
    if fmt not in COMPRESSED_FORMATS:
        raise ConversionError(f"compressed format '{fmt}' not one of {COMPRESSED_FORMATS}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"),
                           cv2.cvtColor(np.asarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR),
                           params)
    if not ok:
        raise ConversionError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = array.array("B", buf.tobytes())
    return msg


# --------------------------------------------------------------------------------------------
# Tracked instances


def _uint32_array(values: np.ndarray) -> array.array:
    out = array.array("I")
    out.frombytes(np.ascontiguousarray(values, dtype=np.uint32).tobytes())
    return out


def mask_counts(mask: np.ndarray, bbox: tuple[int, int, int, int]) -> np.ndarray:
    """COCO uncompressed RLE of a full (H, W) mask, encoding only the columns of its `bbox`.

    Equal to ``mask_to_counts(mask)``; columns outside the box are all background, so their
    pixels just lengthen the first and last background runs (several times faster for the
    small objects of a wide camera image).
    """
    h, w = mask.shape
    x, _, bw, _ = bbox
    if bw == 0:
        return np.array([h * w], dtype=np.uint32)
    counts = mask_to_counts(mask[:, x:x + bw]).astype(np.int64)
    counts[0] += x * h
    tail = (w - x - bw) * h
    if tail:
        if len(counts) % 2:  # odd number of runs: the last one is background
            counts[-1] += tail
        else:
            counts = np.append(counts, tail)
    return counts.astype(np.uint32)


def instance_to_msg(inst: TrackedInstance) -> TrackedInstanceMsg:
    """stemseg_core TrackedInstance -> stemseg_ros/TrackedInstance (mask as COCO RLE counts)."""
    m = TrackedInstanceMsg()
    m.track_id = int(inst.track_id)
    m.class_id = int(inst.class_id)
    m.class_name = str(inst.class_name)
    m.score = float(inst.score)
    box = inst.bbox()
    x, y, w, h = box
    m.bbox = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False)
    m.mask_counts = _uint32_array(mask_counts(np.asarray(inst.mask, dtype=bool), box))
    return m


def frame_result_to_msg(result: FrameResult, header: Header,
                        instances: Sequence[TrackedInstance] | None = None
                        ) -> TrackedInstanceArray:
    """FrameResult -> TrackedInstanceArray with the source image's `header`.

    `instances` replaces result.instances when given (e.g. with remapped track IDs).
    """
    msg = TrackedInstanceArray()
    msg.header = header
    msg.height, msg.width = (int(v) for v in result.image_size)
    insts = result.instances if instances is None else instances
    msg.instances = [instance_to_msg(i) for i in insts]
    return msg


def msg_to_frame_result(msg: TrackedInstanceArray, index: int = -1) -> FrameResult:
    """TrackedInstanceArray -> FrameResult (stamp = header stamp in ns). Raises ValueError on
    masks whose runs do not cover height x width."""
    h, w = int(msg.height), int(msg.width)
    stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    insts = [TrackedInstance(track_id=int(m.track_id), class_id=int(m.class_id),
                             class_name=m.class_name, score=float(m.score),
                             mask=counts_to_mask(np.asarray(m.mask_counts), h, w))
             for m in msg.instances]
    return FrameResult(index=index, stamp=stamp, image_size=(h, w), instances=insts)


def stamp_ns(header: Header) -> int:
    """Header stamp as integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
