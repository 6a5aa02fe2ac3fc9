"""Image and result conversions of the node, without DDS."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("stemseg_ros.msg", reason="needs the colcon-built messages")

from std_msgs.msg import Header  # noqa: E402

from stemseg_core.inference.types import FrameResult, TrackedInstance  # noqa: E402
from stemseg_ros import conversions as cv  # noqa: E402

RNG = np.random.default_rng(0)
H, W = 5, 7


def _header() -> Header:
    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


@pytest.mark.parametrize("encoding,shape,dtype", [
    ("rgb8", (H, W, 3), np.uint8), ("bgr8", (H, W, 3), np.uint8),
    ("rgba8", (H, W, 4), np.uint8), ("bgra8", (H, W, 4), np.uint8),
    ("mono8", (H, W), np.uint8), ("8UC1", (H, W), np.uint8),
    ("mono16", (H, W), np.uint16), ("16UC1", (H, W), np.uint16),
])
def test_image_round_trip(encoding, shape, dtype):
    arr = RNG.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    msg = cv.array_to_image(arr, encoding, _header())
    assert (msg.height, msg.width, msg.encoding) == (H, W, encoding)
    assert msg.step == W * (shape[2] if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    assert msg.header.frame_id == "cam"
    back = cv.image_to_array(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_to_rgb_channel_order():
    rgb = RNG.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    alpha = np.full((H, W, 1), 7, np.uint8)
    cases = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.concatenate([rgb, alpha], 2),
             "bgra8": np.concatenate([rgb[..., ::-1], alpha], 2)}
    for enc, arr in cases.items():
        out = cv.image_to_rgb(cv.array_to_image(np.ascontiguousarray(arr), enc))
        assert out.shape == (H, W, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb, err_msg=enc)


def test_mono16_values_and_big_endian_and_padding():
    vals = np.array([[0, 255, 256, 4095], [32768, 65280, 65535, 1]], np.uint16)
    msg = cv.array_to_image(vals, "mono16")
    # little endian on the wire: 256 -> bytes 00 01
    assert bytes(msg.data)[4:6] == b"\x00\x01"
    rgb = cv.image_to_rgb(msg)
    np.testing.assert_array_equal(rgb[..., 0], vals >> 8)
    assert (rgb[..., 0] == rgb[..., 2]).all()
    # the same values big endian with 4 bytes of row padding
    big = vals.astype(">u2").tobytes()
    rows = [big[r * 8:(r + 1) * 8] + b"\xaa\xbb\xcc\xdd" for r in range(2)]
    msg2 = cv.array_to_image(vals, "mono16")
    msg2.is_bigendian, msg2.step = 1, 12
    msg2.data = b"".join(rows)
    np.testing.assert_array_equal(cv.image_to_array(msg2), vals)


def test_bad_images_raise_clear_errors():
    msg = cv.array_to_image(np.zeros((H, W, 3), np.uint8), "rgb8")
    msg.encoding = "yuv999"
    with pytest.raises(cv.ConversionError, match="unsupported image encoding 'yuv999'"):
        cv.image_to_rgb(msg)
    msg = cv.array_to_image(np.zeros((H, W, 3), np.uint8), "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(cv.ConversionError,
                       match=r"needs 105 bytes of data \(5 rows of 21 B\), got 104"):
        cv.image_to_rgb(msg)
    msg = cv.array_to_image(np.zeros((H, W, 3), np.uint8), "rgb8")
    msg.step = 3
    with pytest.raises(cv.ConversionError, match="step 3 is smaller than a row"):
        cv.image_to_rgb(msg)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_round_trip(fmt):
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :16] = (250, 10, 10)
    rgb[:, 16:32] = (10, 250, 10)
    rgb[:, 32:] = (10, 10, 250)
    msg = cv.rgb_to_compressed(rgb, fmt, _header())
    assert fmt in msg.format and msg.header.stamp.nanosec == 345
    out = cv.compressed_to_rgb(msg)
    assert out.shape == rgb.shape
    if fmt == "png":
        np.testing.assert_array_equal(out, rgb)
    else:  # lossy, but the colours stay where they were (R, G, B order not swapped)
        assert np.abs(out.astype(int) - rgb).mean() < 8
        assert out[16, 4, 0] > 200 and out[16, 20, 1] > 200 and out[16, 40, 2] > 200


def test_compressed_grey_and_16bit_png():
    import cv2
    from sensor_msgs.msg import CompressedImage

    grey16 = np.array([[0, 512], [65535, 4096]], np.uint16)
    msg = CompressedImage(format="png")
    msg.data = cv2.imencode(".png", grey16)[1].tobytes()
    out = cv.compressed_to_rgb(msg)
    np.testing.assert_array_equal(out[..., 1], grey16 >> 8)


def test_corrupted_jpeg_raises():
    rgb = RNG.integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
    good = bytes(cv.rgb_to_compressed(rgb, "jpeg").data)
    truncated = cv.rgb_to_compressed(rgb, "jpeg")
    truncated.data = good[: len(good) // 2]
    with pytest.raises(cv.ConversionError, match="corrupted jpeg.*truncated"):
        cv.compressed_to_rgb(truncated)
    garbage = cv.rgb_to_compressed(rgb, "jpeg")
    garbage.data = b"\x00\x11" + good[2:200]
    with pytest.raises(cv.ConversionError, match="cannot decode CompressedImage"):
        cv.compressed_to_rgb(garbage)
    empty = cv.rgb_to_compressed(rgb, "jpeg")
    empty.data = b""
    with pytest.raises(cv.ConversionError, match="empty CompressedImage"):
        cv.compressed_to_rgb(empty)


def test_frame_result_round_trip():
    m1 = np.zeros((6, 9), bool)
    m1[1:3, 2:5] = True
    m2 = np.zeros((6, 9), bool)
    m2[0, 0] = m2[5, 8] = True  # first and last pixel: runs start with 0-length background
    res = FrameResult(index=3, stamp=None, image_size=(6, 9), instances=[
        TrackedInstance(7, 1, "car", 0.9, m1), TrackedInstance(12, 2, "pedestrian", 0.4, m2)])
    msg = cv.frame_result_to_msg(res, _header())
    assert (msg.height, msg.width, msg.header.frame_id) == (6, 9, "cam")
    a, b = msg.instances
    assert (a.track_id, a.class_id, a.class_name) == (7, 1, "car")
    assert abs(a.score - 0.9) < 1e-6
    assert (a.bbox.x_offset, a.bbox.y_offset, a.bbox.width, a.bbox.height) == (2, 1, 3, 2)
    assert list(b.mask_counts)[0] == 0 and sum(b.mask_counts) == 54
    back = cv.msg_to_frame_result(msg)
    assert back.stamp == 12 * 10**9 + 345 and back.image_size == (6, 9)
    for orig, got in zip(res.instances, back.instances):
        assert (got.track_id, got.class_id, got.class_name) == (orig.track_id, orig.class_id,
                                                                 orig.class_name)
        np.testing.assert_array_equal(got.mask, orig.mask)


def test_empty_frame_result():
    msg = cv.frame_result_to_msg(FrameResult(0, None, (4, 4), []), _header())
    assert msg.instances == [] and (msg.height, msg.width) == (4, 4)


def test_bbox_rle_equals_full_rle():
    from stemseg_core.data.rle import mask_to_counts

    rng = np.random.default_rng(5)
    masks = [np.zeros((9, 13), bool), np.ones((9, 13), bool)]
    for _ in range(40):
        m = np.zeros((9, 13), bool)
        y0, x0 = rng.integers(0, 9), rng.integers(0, 13)
        y1, x1 = rng.integers(y0, 9) + 1, rng.integers(x0, 13) + 1
        m[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) > 0.4
        masks.append(m)
    for corner in ((0, 0), (8, 12), (8, 0), (0, 12)):
        m = np.zeros((9, 13), bool)
        m[corner] = True
        masks.append(m)
    for m in masks:
        inst = TrackedInstance(1, 1, "car", 1.0, m)
        got = cv.mask_counts(m, inst.bbox())
        np.testing.assert_array_equal(got, mask_to_counts(m))
        assert got.dtype == np.uint32


def test_track_ids_image_keeps_32_bit_ids():
    a = np.zeros((H, W), bool)
    a[0, :3] = True
    b = np.zeros((H, W), bool)
    b[0, 2:5] = True  # overlaps a at (0, 2): the higher score wins
    big = 4_000_000_000  # > 2**31: the bits are the uint32 ID
    insts = [TrackedInstance(70_000, 1, "car", 0.9, a), TrackedInstance(big, 2, "ped", 0.5, b)]
    msg = cv.track_ids_image(insts, H, W, _header())
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("32SC1", 4 * W, H, W)
    ids = cv.image_to_array(msg).view(np.uint32)
    want = np.zeros((H, W), np.uint32)
    want[0, 2:5] = big
    want[0, :3] = 70_000
    np.testing.assert_array_equal(ids, want)


def test_place_in_image_maps_roi_masks_back():
    m = np.zeros((2, 3), bool)
    m[1, 2] = True
    (out,) = cv.place_in_image([TrackedInstance(1, 1, "car", 0.9, m)], (4, 1, 3, 2), (H, W))
    assert out.mask.shape == (H, W) and np.argwhere(out.mask).tolist() == [[2, 6]]
