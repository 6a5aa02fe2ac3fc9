"""Message <-> numpy conversions of the perception node (no ROS `cv_bridge` needed).

Images go through the core's one codec (stemseg_core/data/image_codec.py, shared with the bag
tools), which honours `step` and `is_bigendian` and decodes every encoding it lists:

- :func:`image_to_rgb` / :func:`compressed_to_rgb`: what the tracker eats, (H, W, 3) uint8 RGB.
- :func:`image_to_array` / :func:`array_to_image`: sensor_msgs/Image <-> numpy in the image's
  own layout (also ``32SC1``, the track-ID image).
- :func:`rgb_to_compressed`: jpeg/png CompressedImage (tests, bag tools).

Results:
- :func:`frame_result_to_msg` / :func:`msg_to_frame_result`: stemseg_core FrameResult <->
  stemseg_ros/TrackedInstanceArray, masks as COCO uncompressed RLE (`mask_counts`); with the
  core's Track3D per instance also position, size and velocity (:func:`set_3d`).
- :func:`track_ids_image`: the ``~/track_ids`` label image, 32SC1 whose 32 bits are the uint32
  track ID (read it with ``image_to_array(msg).view(np.uint32)``; IDs up to 2**31 - 1 read the
  same as int32), 0 = background. No ID wraps.
- :func:`place_in_image`: instances found in a region of interest, with full-image masks.

Every image failure raises :class:`ConversionError` (the codec's ImageDecodeError) naming the
encoding, sizes and what to do; the node logs it, counts it and drops the frame.
"""
from __future__ import annotations

import array
import dataclasses
from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from stemseg_core.data import image_codec as codec
from stemseg_core.data.rle import counts_to_mask, mask_to_counts
from stemseg_core.geometry import Track3D
from stemseg_core.inference.types import FrameResult, TrackedInstance
from stemseg_ros.msg import TrackedInstance as TrackedInstanceMsg
from stemseg_ros.msg import TrackedInstanceArray

ConversionError = codec.ImageDecodeError
ENCODINGS = codec.ENCODINGS
COMPRESSED_FORMATS = codec.COMPRESSED_FORMATS
#: Encoding of the track-ID image (not a camera encoding, so not in the codec).
TRACK_IDS_ENCODING = "32SC1"


# --------------------------------------------------------------------------------------------
# Images


def image_to_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, C) or (H, W) array in the message's own encoding and dtype."""
    if msg.encoding == TRACK_IDS_ENCODING:
        h, w = int(msg.height), int(msg.width)
        rows = np.frombuffer(bytes(msg.data), np.uint8)[:int(msg.step) * h]
        wire = np.dtype(">i4" if msg.is_bigendian else "<i4")
        return rows.reshape(h, int(msg.step))[:, :4 * w].copy().view(wire).astype(np.int32)
    return codec.unpack_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian,
                              msg.data)


def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """numpy image in `encoding`'s layout -> sensor_msgs/Image (little endian, no padding)."""
    arr = np.asarray(arr)
    if encoding == TRACK_IDS_ENCODING:
        if arr.dtype != np.int32 or arr.ndim != 2:
            raise ConversionError(f"32SC1 needs an (H, W) int32 array, got {arr.shape} "
                                  f"{arr.dtype}")
        step, data = 4 * arr.shape[1], np.ascontiguousarray(arr, "<i4").tobytes()
    else:
        step, data = codec.pack_image(arr, encoding)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, int(step)
    msg.data = array.array("B", data)
    return msg


def image_to_rgb(msg: Image, max_pixels: int | None = None) -> np.ndarray:
    """sensor_msgs/Image in any encoding the codec knows -> (H, W, 3) uint8 RGB; more than
    `max_pixels` raises codec.ImageTooLarge before anything is allocated."""
    return codec.decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian,
                              msg.data, max_pixels=max_pixels)


def compressed_to_rgb(msg: CompressedImage, max_pixels: int | None = None,
                      min_size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png; colour, grey or 16-bit) -> (H, W, 3) uint8 RGB.
    Over `max_pixels` (by the header): codec.ImageTooLarge before decoding; `min_size` (h, w):
    a JPEG is decoded at the smallest reduced scale still covering it."""
    return codec.decode_compressed(msg.format, msg.data, max_pixels=max_pixels,
                                   min_size=min_size)


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "png", header: Header | None = None,
                      jpeg_quality: int = 95) -> CompressedImage:
    """(H, W, 3) uint8 RGB -> sensor_msgs/CompressedImage (jpeg or png, bgr8 inside)."""
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = codec.compressed_format_string(fmt)
    msg.data = array.array("B", codec.encode_compressed(rgb, fmt, quality=jpeg_quality))
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


def set_3d(m: TrackedInstanceMsg, track: Track3D) -> TrackedInstanceMsg:
    """Fill the 3-D fields of `m` from a core Track3D (without a position: all zero)."""
    obj = track.object
    m.has_position = bool(obj.has_position)
    if m.has_position:
        m.position = Point(**dict(zip("xyz", (float(v) for v in obj.position))))
        m.size = Vector3(**dict(zip("xyz", (float(v) for v in obj.size))))
    m.has_velocity = bool(m.has_position and track.has_velocity)
    if m.has_velocity:
        m.velocity = Vector3(**dict(zip("xyz", (float(v) for v in track.velocity))))
    return m


def frame_result_to_msg(result: FrameResult, header: Header,
                        instances: Sequence[TrackedInstance] | None = None,
                        tracks3d: Sequence[Track3D] | None = None) -> TrackedInstanceArray:
    """FrameResult -> TrackedInstanceArray with the source image's `header`.

    `instances` replaces result.instances when given (e.g. with remapped track IDs);
    `tracks3d` (one core Track3D per instance, same order) fills the 3-D fields.
    """
    msg = TrackedInstanceArray()
    msg.header = header
    msg.height, msg.width = (int(v) for v in result.image_size)
    insts = result.instances if instances is None else instances
    msg.instances = [instance_to_msg(i) for i in insts]
    if tracks3d is not None:
        if len(tracks3d) != len(msg.instances):
            raise ValueError(f"{len(tracks3d)} 3-D states for {len(msg.instances)} instances")
        for m, t in zip(msg.instances, tracks3d):
            set_3d(m, t)
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


def track_ids_image(instances: Sequence[TrackedInstance], height: int, width: int,
                    header: Header | None = None) -> Image:
    """32SC1 image whose pixels hold the uint32 track ID (bit for bit) of the instance there,
    0 = background; where masks overlap the higher score wins."""
    ids = np.zeros((int(height), int(width)), dtype=np.uint32)
    for inst in sorted(instances, key=lambda i: float(i.score)):
        ids[np.asarray(inst.mask, dtype=bool)] = int(inst.track_id)
    return array_to_image(ids.view(np.int32), "32SC1", header)


def place_in_image(instances: Sequence[TrackedInstance], roi: tuple[int, int, int, int],
                   size: tuple[int, int]) -> list[TrackedInstance]:
    """Instances whose masks cover the region `roi` (x, y, w, h) -> the same with masks of the
    full image `size` (H, W), background outside the region."""
    x, y, w, h = roi
    out = []
    for inst in instances:
        full = np.zeros(size, dtype=bool)
        full[y:y + h, x:x + w] = inst.mask
        out.append(dataclasses.replace(inst, mask=full))
    return out


def stamp_ns(header: Header) -> int:
    """Header stamp as integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
