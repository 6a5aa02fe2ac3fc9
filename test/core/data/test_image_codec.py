"""The one image codec: padded rows, byte order, every encoding, compressed, clear errors."""
from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rosbags.image import image_to_cvimage

from stemseg_core.data import image_codec as ic

H, W = 6, 8
RNG = np.random.default_rng(7)
NOISE = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
ORANGE = np.broadcast_to(np.array([200, 60, 30], np.uint8), (H, W, 3)).copy()
#: encodings that keep every colour of every pixel (no chroma sharing, no mosaic, no grey)
LOSSLESS = [e for e, lay in ic.ENCODINGS.items() if lay.kind in ("rgb", "bgr", "rgba", "bgra")]
GREY = [e for e, lay in ic.ENCODINGS.items() if lay.kind in ("mono", "float")]


def _pad(data: bytes, step: int, rows: int, pad: int, fill: int = 0xAB) -> bytes:
    """Insert ``pad`` filler bytes after each ``step``-byte row."""
    out = bytearray()
    for r in range(rows):
        out += data[r * step:(r + 1) * step] + bytes([fill]) * pad
    return bytes(out)


@pytest.mark.parametrize("encoding", LOSSLESS)
def test_lossless_round_trip(encoding):
    enc, step, data = ic.encode_image(NOISE, encoding)
    assert enc == encoding
    assert step == W * ic.ENCODINGS[encoding].channels * ic.ENCODINGS[encoding].dtype.itemsize
    np.testing.assert_array_equal(ic.decode_image(enc, H, W, step, False, data), NOISE)


@pytest.mark.parametrize("encoding", GREY)
def test_grey_round_trip_gives_the_luma(encoding):
    _, step, data = ic.encode_image(NOISE, encoding)
    out = ic.decode_image(encoding, H, W, step, False, data)
    luma = cv2.cvtColor(NOISE, cv2.COLOR_RGB2GRAY)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], luma)


@pytest.mark.parametrize("encoding", [e for e, lay in ic.ENCODINGS.items()
                                      if lay.kind in ("yuv", "nv", "bayer")])
def test_subsampled_round_trip_of_a_flat_colour(encoding):
    """Chroma-shared and mosaic encodings are exact (+-1 for YUV rounding) on a flat colour;
    a swapped U/V or a wrong Bayer pattern would swap red and blue here."""
    _, step, data = ic.encode_image(ORANGE, encoding)
    out = ic.decode_image(encoding, H, W, step, False, data)
    assert np.abs(out.astype(int) - ORANGE).max() <= 1


def test_known_pixel_values():
    # mono16 keeps the top byte: 0x12AB -> 0x12
    data = np.full(4, 0x12AB, "<u2").tobytes()
    assert ic.decode_image("mono16", 2, 2, 4, False, data)[0, 0].tolist() == [0x12] * 3
    # bgr8 bytes (1, 2, 3) are RGB (3, 2, 1); rgba drops alpha
    assert ic.decode_image("bgr8", 1, 1, 3, False, b"\x01\x02\x03")[0, 0].tolist() == [3, 2, 1]
    assert ic.decode_image("bgra8", 1, 1, 4, False, b"\x01\x02\x03\x04")[0, 0].tolist() == \
        [3, 2, 1]
    # uyvy: Y=235 with neutral chroma is white, Y=16 black (BT.601 video range)
    white = ic.decode_image("uyvy", 1, 2, 4, False, bytes([128, 235, 128, 16]))
    assert white[0, 0].tolist() == [255, 255, 255] and white[0, 1].tolist() == [0, 0, 0]
    # high V is red (R > B > G); the same bytes as yuyv put V in the Y slot
    red = ic.decode_image("uyvy", 1, 2, 4, False, bytes([128, 128, 255, 128]))[0, 0]
    assert red[0] == 255 and red[0] > red[2] > red[1]
    # 32FC1 is intensity in [0, 1]: 0.5 -> 128, NaN -> 0, 2.0 -> 255
    f = np.array([0.5, np.nan, 2.0, -1.0], "<f4").tobytes()
    assert ic.decode_image("32FC1", 1, 4, 16, False, f)[0, :, 0].tolist() == [128, 0, 255, 0]
    # bayer_rggb8: the top-left pixel of a 2x2 cell is red
    mosaic = np.zeros((4, 4), np.uint8)
    mosaic[0::2, 0::2] = 250  # only the R sites lit
    out = ic.decode_image("bayer_rggb8", 4, 4, 4, False, mosaic.tobytes())
    assert out[1, 1, 0] > 100 and out[1, 1, 2] == 0


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono8", "mono16", "rgb16", "uyvy",
                                      "nv12", "bayer_grbg16", "32FC1"])
@pytest.mark.parametrize("last_row_padded", [True, False])
def test_padded_rows_decode_like_unpadded(encoding, last_row_padded):
    _, step, data = ic.encode_image(NOISE, encoding)
    rows = ic.ENCODINGS[encoding].rows(H)
    pad = 6 if ic.ENCODINGS[encoding].dtype.itemsize == 1 else 4
    padded = _pad(data, step, rows, pad)
    if not last_row_padded:
        padded = padded[:-pad]
    want = ic.decode_image(encoding, H, W, step, False, data)
    got = ic.decode_image(encoding, H, W, step + pad, False, padded)
    np.testing.assert_array_equal(got, want)


def test_padding_would_shift_rows_if_ignored():
    """The bug this codec fixes: reading a padded rgb8 image as unpadded shifts rows."""
    _, step, data = ic.encode_image(NOISE, "rgb8")
    padded = _pad(data, step, H, 8)
    naive = np.frombuffer(padded[:H * step], np.uint8).reshape(H, W, 3)
    assert not np.array_equal(naive, NOISE)
    np.testing.assert_array_equal(ic.decode_image("rgb8", H, W, step + 8, False, padded), NOISE)


@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgra16", "bayer_rggb16", "32FC1"])
def test_big_endian(encoding):
    lay = ic.ENCODINGS[encoding]
    shape = (H, W, lay.channels) if lay.channels > 1 else (H, W)
    if lay.kind == "float":
        native = RNG.random(shape, dtype=np.float32)
    else:
        native = RNG.integers(0, 65536, shape, dtype=np.uint16)
    step = lay.row_bytes(W)
    little = native.astype(lay.dtype.newbyteorder("<")).tobytes()
    big = native.astype(lay.dtype.newbyteorder(">")).tobytes()
    want = ic.to_rgb8(native, encoding)
    np.testing.assert_array_equal(ic.decode_image(encoding, H, W, step, True, big), want)
    np.testing.assert_array_equal(ic.decode_image(encoding, H, W, step, False, little), want)
    # read with the wrong byte order, the image changes: the flag is honoured
    assert not np.array_equal(ic.decode_image(encoding, H, W, step, False, big), want)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "rgb16", "bgr16",
                                      "uyvy", "yuyv", "bayer_rggb8", "bayer_bggr8",
                                      "bayer_gbrg8", "bayer_grbg8"])
def test_equals_rosbags_image_on_unpadded_data(encoding):
    """Same conventions as rosbags-image where both apply (unpadded rows; 16-bit compared
    after our >> 8 on the values it keeps at 16 bits)."""
    _, step, data = ic.encode_image(NOISE, encoding)
    msg = SimpleNamespace(encoding=encoding, height=H, width=W, step=step, is_bigendian=0,
                          data=np.frombuffer(data, np.uint8))
    sixteen = ic.ENCODINGS[encoding].dtype.itemsize == 2
    theirs = image_to_cvimage(msg, "rgb16" if sixteen else "rgb8")
    if sixteen:
        theirs = (theirs >> 8).astype(np.uint8)
    np.testing.assert_array_equal(ic.decode_image(encoding, H, W, step, False, data), theirs)


@pytest.mark.parametrize("kind", [bytes, bytearray, "array", "numpy", memoryview, list])
def test_data_types(kind):
    _, step, data = ic.encode_image(NOISE, "bgr8")
    wrapped = {"array": lambda d: array.array("B", d),
               "numpy": lambda d: np.frombuffer(d, np.uint8)}.get(kind, kind)(data)
    np.testing.assert_array_equal(ic.decode_image("bgr8", H, W, step, False, wrapped), NOISE)


def test_errors_name_encoding_size_and_step():
    _, step, data = ic.encode_image(NOISE, "rgb8")
    with pytest.raises(ic.ImageDecodeError, match=r"rgb8 image 8x6 \(step 24\) needs 144 bytes"
                                                  r".*got 100"):
        ic.decode_image("rgb8", H, W, step, False, data[:100])
    with pytest.raises(ic.ImageDecodeError, match=r"step 20 is smaller than a row .*24 B"):
        ic.decode_image("rgb8", H, W, 20, False, data)
    with pytest.raises(ic.ImageDecodeError, match=r"nv12 image 8x6 \(step 8\) needs 72 bytes"):
        ic.decode_image("nv12", H, W, 8, False, bytes(48))
    with pytest.raises(ic.ImageDecodeError, match=r"unsupported image encoding 'hsv8'.*rgb8"):
        ic.decode_image("hsv8", H, W, 24, False, data)
    with pytest.raises(ic.ImageDecodeError, match=r"empty rgb8 image: 0x0"):
        ic.decode_image("rgb8", 0, 0, 0, False, b"")
    with pytest.raises(ic.ImageDecodeError, match=r"uyvy image 3x2: the width must be even"):
        ic.decode_image("uyvy", 2, 3, 6, False, bytes(12))
    with pytest.raises(ic.ImageDecodeError, match=r"not a multiple of the 2-byte"):
        ic.decode_image("mono16", H, W, 17, False, bytes(200))
    assert issubclass(ic.ImageDecodeError, ValueError)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_round_trip(fmt):
    smooth = cv2.GaussianBlur(cv2.resize(NOISE, (64, 48)), (9, 9), 3)
    data = ic.encode_compressed(smooth, fmt)
    out = ic.decode_compressed(ic.compressed_format_string(fmt), data)
    assert out.shape == smooth.shape and out.dtype == np.uint8
    tol = 0 if fmt == "png" else 12
    assert np.abs(out.astype(int) - smooth).max() <= tol
    assert ic.compressed_format_string(fmt) == f"rgb8; {fmt} compressed bgr8"


def test_compressed_grey_16bit_and_rgba():
    grey16 = np.full((4, 5), 0x3412, np.uint16)
    out = ic.decode_compressed("mono16; png compressed mono16", ic.compress_array(grey16))
    assert out.shape == (4, 5, 3) and out[0, 0].tolist() == [0x34] * 3
    rgba = np.dstack([NOISE, np.full((H, W), 9, np.uint8)])
    np.testing.assert_array_equal(ic.decode_compressed("png", ic.compress_array(rgba)), NOISE)


def test_compressed_errors():
    jpeg = ic.encode_compressed(NOISE, "jpeg")
    with pytest.raises(ic.ImageDecodeError, match=r"corrupted jpeg \(\d+ bytes.*truncated"):
        ic.decode_compressed("jpeg", jpeg[:len(jpeg) // 2])
    with pytest.raises(ic.ImageDecodeError, match="empty CompressedImage"):
        ic.decode_compressed("png", b"")
    with pytest.raises(ic.ImageDecodeError, match="starts with 6e6f7065"):
        ic.decode_compressed("png", b"nope, not an image")
    with pytest.raises(ic.ImageDecodeError, match="depth images"):
        ic.decode_compressed("16UC1; compressedDepth png", jpeg)
    with pytest.raises(ic.ImageDecodeError, match=r"not one of \('jpeg', 'png'\)"):
        ic.encode_compressed(NOISE, "bmp")


def test_encode_rejects_non_rgb():
    with pytest.raises(ic.ImageDecodeError, match=r"\(H, W, 3\) uint8 RGB.*\(6, 8\) uint8"):
        ic.encode_image(NOISE[..., 0], "rgb8")
    with pytest.raises(ic.ImageDecodeError, match=r"mono16 needs an \(H, W\) uint16"):
        ic.pack_image(NOISE, "mono16")
