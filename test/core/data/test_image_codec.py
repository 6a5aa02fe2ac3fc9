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


def _rosbags_image(encoding: str, step: int, data: bytes, h: int = H, w: int = W) -> np.ndarray:
    """rosbags-image's RGB8 decoding of unpadded data (16-bit: its values >> 8, as ours)."""
    msg = SimpleNamespace(encoding=encoding, height=h, width=w, step=step, is_bigendian=0,
                          data=np.frombuffer(data, np.uint8))
    sixteen = ic.ENCODINGS[encoding].dtype.itemsize == 2
    theirs = image_to_cvimage(msg, "rgb16" if sixteen else "rgb8")
    return (theirs >> 8).astype(np.uint8) if sixteen else theirs


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "rgb16", "bgr16",
                                      "uyvy", "yuyv"])
def test_equals_rosbags_image_on_unpadded_data(encoding):
    """Same conventions as rosbags-image where both apply (unpadded rows; 16-bit compared
    after our >> 8 on the values it keeps at 16 bits)."""
    _, step, data = ic.encode_image(NOISE, encoding)
    np.testing.assert_array_equal(ic.decode_image(encoding, H, W, step, False, data),
                                  _rosbags_image(encoding, step, data))


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8",
                                      "bayer_grbg8", "bayer_rggb16"])
def test_bayer_is_demosaiced_edge_aware(encoding):
    """Mosaics are demosaiced edge-aware, not bilinearly as rosbags-image (and cv_bridge) do:
    the same pattern and colours where the image is flat, closer to the source at the edges
    of coloured boxes (measured: about 0.8 of bilinear's mean error)."""
    h, w = 32, 48
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (30, 160, 60)
    img[8:24, 10:30] = (220, 40, 40)
    img[4:13, 33:44] = (60, 90, 230)
    _, step, data = ic.encode_image(img, encoding)
    ours = ic.decode_image(encoding, h, w, step, False, data).astype(int)
    theirs = _rosbags_image(encoding, step, data, h, w).astype(int)
    inner = (slice(2, h - 2), slice(2, w - 2))  # borders: each library's own extrapolation
    err_ours = np.abs(ours - img)[inner].mean()
    err_theirs = np.abs(theirs - img)[inner].mean()
    assert err_ours < 0.9 * err_theirs, (err_ours, err_theirs)
    flat = np.broadcast_to(img[0, 0], (h, w, 3)).copy()  # flat: both exact, same pattern
    _, step, data = ic.encode_image(flat, encoding)
    np.testing.assert_array_equal(ic.decode_image(encoding, h, w, step, False, data), flat)
    np.testing.assert_array_equal(_rosbags_image(encoding, step, data, h, w), flat)


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


# --------------------------------------------------------------------------------------------
# Size limits before allocation; header sizes; reduced-scale JPEG


def _png_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of ``width x height`` zeros, built without OpenCV (a
    decompression bomb: a few kB on the wire, ``width * height`` pixels decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def _smooth(h: int, w: int) -> np.ndarray:
    """A camera-like image: smooth gradients plus some edges (JPEG-friendly, not noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(x / 37.0), 128 + 100 * np.cos(y / 23.0),
                    (x + y) * 255.0 / (h + w)], axis=2)
    img[h // 3:h // 2, w // 4:w // 3] = (250, 20, 20)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize("size", [(1, 1), (6, 8), (37, 3), (720, 1280)])
def test_compressed_size_reads_the_header(fmt, size):
    img = np.zeros((*size, 3), np.uint8)
    data = ic.encode_compressed(img, fmt)
    assert ic.compressed_size(fmt, data) == size
    assert ic.compressed_size("whatever", bytearray(data)) == size  # content decides


def test_compressed_size_of_progressive_grey_and_exif_jpeg():
    grey = cv2.imencode(".jpg", np.zeros((33, 65), np.uint8),
                        [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert ic.compressed_size("jpeg", grey) == (33, 65)
    # an APP1 (Exif) segment and fill bytes before the frame header are walked over
    jpeg = ic.encode_compressed(NOISE, "jpeg")
    app1 = b"\xff\xe1" + (2 + 40).to_bytes(2, "big") + b"Exif\x00\x00" + bytes(34)
    padded = jpeg[:2] + app1 + b"\xff" + jpeg[2:]
    assert ic.compressed_size("jpeg", padded) == (H, W)
    assert ic.decode_compressed("jpeg", padded).shape == (H, W, 3)


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00", b"BM" + bytes(60),
                                  b"\x89PNG\r\n\x1a\n" + bytes(8),
                                  b"\xff\xd8\xff\xda\x00\x08" + bytes(20)])
def test_compressed_size_none_without_a_header(data):
    assert ic.compressed_size("jpeg", data) is None


def test_png_bomb_refused_before_decoding(monkeypatch):
    """The issue's attack: a valid 12000x12000 PNG of a few kB. Refused from its header,
    OpenCV is never called."""
    bomb = _png_zeros(12000, 12000)
    assert len(bomb) < 200_000 and ic.compressed_size("png", bomb) == (12000, 12000)
    monkeypatch.setattr(ic.cv2, "imdecode", lambda *a: pytest.fail("decoded a refused image"))
    with pytest.raises(ic.ImageTooLarge) as e:
        ic.decode_compressed("png", bomb, max_pixels=3840 * 2160)
    msg = str(e.value)
    assert "12000x12000 (144000000 pixels)" in msg and "8294400" in msg
    assert "max_image_pixels" in msg
    assert (e.value.height, e.value.width, e.value.limit) == (12000, 12000, 3840 * 2160)
    assert isinstance(e.value, ic.ImageDecodeError)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_limit_is_inclusive(fmt):
    data = ic.encode_compressed(NOISE, fmt)
    assert ic.decode_compressed(fmt, data, max_pixels=H * W).shape == (H, W, 3)
    with pytest.raises(ic.ImageTooLarge, match=rf"{fmt} image 8x6 \(48 pixels\).*limit of 47"):
        ic.decode_compressed(fmt, data, max_pixels=H * W - 1)


def test_raw_limit_checked_before_the_data():
    """height x width over the limit is refused before the data size is even looked at (a
    peer can claim any size in 20 bytes) and before anything is allocated."""
    with pytest.raises(ic.ImageTooLarge, match=r"rgb8 image 100000x100000 .*limit of 8294400"):
        ic.decode_image("rgb8", 100_000, 100_000, 300_000, False, bytes(20),
                        max_pixels=3840 * 2160)
    with pytest.raises(ic.ImageTooLarge):
        ic.unpack_image("mono8", 3, 3, 3, False, bytes(9), max_pixels=8)
    _, step, data = ic.encode_image(NOISE, "bgr8")
    np.testing.assert_array_equal(ic.decode_image("bgr8", H, W, step, False, data,
                                                  max_pixels=H * W), NOISE)
    # without a limit the size claim is still checked against the data (no allocation)
    with pytest.raises(ic.ImageDecodeError, match="needs 30000000000 bytes"):
        ic.decode_image("rgb8", 100_000, 100_000, 300_000, False, bytes(20))


def test_other_formats_opencv_knows_are_refused():
    bmp = cv2.imencode(".bmp", NOISE)[1].tobytes()
    with pytest.raises(ic.ImageDecodeError, match=r"starts with 424d.*not jpeg/png"):
        ic.decode_compressed("bmp", bmp)


def test_truncated_header_is_a_decode_error():
    jpeg = ic.encode_compressed(NOISE, "jpeg")
    with pytest.raises(ic.ImageDecodeError, match=r"corrupted jpeg \(20 bytes.*no readable"):
        ic.decode_compressed("jpeg", jpeg[:20])
    png = ic.encode_compressed(NOISE, "png")
    with pytest.raises(ic.ImageDecodeError, match=r"corrupted png \(20 bytes.*no readable"):
        ic.decode_compressed("png", png[:20])
    with pytest.raises(ic.ImageDecodeError, match=r"cannot decode png 8x6"):
        ic.decode_compressed("png", png[:40])


#: Mean absolute difference (grey levels, 0-255) allowed between a reduced-scale JPEG decode
#: and a full decode resized with INTER_AREA: libjpeg's scaled IDCT (and its chroma
#: upsampling) is not an area average of the decoded pixels, so values differ by rounding
#: (measured 0.39 / 0.46 / 0.42 at 1/2, 1/4, 1/8 on this image).
REDUCED_MEAN_TOL = 1.0
#: Share of values allowed to differ by more than 10 levels: only at sharp colour edges, where
#: the chroma is upsampled differently (measured 0.10 % at 1/2, 0.02 % at 1/4, 0 at 1/8; the
#: worst value 44 levels at 1/2 on the red block's edge).
REDUCED_OUTLIER_SHARE = 0.005


@pytest.mark.parametrize(("min_size", "scale"), [((360, 640), 2), ((180, 320), 4),
                                                 ((90, 160), 8), ((1, 1), 8), ((0, 0), 8),
                                                 ((361, 640), 1), ((100, 700), 1),
                                                 ((720, 1280), 1), ((2000, 2000), 1)])
def test_reduced_jpeg_equals_full_decode_resized(min_size, scale):
    img = _smooth(720, 1280)
    jpeg = ic.encode_compressed(img, "jpeg", quality=90)
    full = ic.decode_compressed("jpeg", jpeg)
    got = ic.decode_compressed("jpeg", jpeg, min_size=min_size)
    assert got.shape == (720 // scale, 1280 // scale, 3) and got.dtype == np.uint8
    assert got.shape[0] >= min(min_size[0], 720) and got.shape[1] >= min(min_size[1], 1280)
    if scale == 1:
        np.testing.assert_array_equal(got, full)
        return
    want = cv2.resize(full, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(got.astype(np.int16) - want)
    assert diff.mean() <= REDUCED_MEAN_TOL
    assert (diff > 10).mean() <= REDUCED_OUTLIER_SHARE
    assert got[..., 0].mean() == pytest.approx(want[..., 0].mean(), abs=0.5)  # R stays R


def test_reduced_jpeg_rounds_odd_sizes_up_and_png_stays_full():
    img = _smooth(721, 1281)
    got = ic.decode_compressed("jpeg", ic.encode_compressed(img, "jpeg"), min_size=(181, 321))
    assert got.shape == (181, 321, 3)  # ceil(721 / 4), ceil(1281 / 4)
    png = ic.decode_compressed("png", ic.encode_compressed(img, "png"), min_size=(100, 100))
    np.testing.assert_array_equal(png, img)
    grey = cv2.imencode(".jpg", img[..., 1])[1].tobytes()
    assert ic.decode_compressed("jpeg", grey, min_size=(360, 640)).shape == (361, 641, 3)
    with pytest.raises(ValueError, match="min_size must be"):
        ic.decode_compressed("jpeg", grey, min_size=(-1, 3))


def test_limit_applies_to_the_sent_size_even_when_decoded_reduced():
    jpeg = ic.encode_compressed(_smooth(720, 1280), "jpeg")
    with pytest.raises(ic.ImageTooLarge, match="1280x720"):
        ic.decode_compressed("jpeg", jpeg, max_pixels=1280 * 720 - 1, min_size=(90, 160))
