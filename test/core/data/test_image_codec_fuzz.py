"""Fuzzing the image codec with hypothesis: whatever a peer sends (any encoding, size, step,
byte order, truncated or random data, damaged jpeg/png), only ImageDecodeError (or its subclass
ImageTooLarge) comes out, and no decoded image is larger than the limit or than its header."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stemseg_core.data import image_codec as ic

#: Fast enough for the normal suite (each test well under a few seconds on 2 cores); no example
#: database written into the working tree. STEMSEG_FUZZ_EXAMPLES=20000 for a long hunt.
FUZZ = settings(max_examples=int(os.environ.get("STEMSEG_FUZZ_EXAMPLES", 150)), deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow])

ENCODINGS = sorted(ic.ENCODINGS) + ["hsv8", "", "rgb8 "]
LIMITS = st.one_of(st.none(), st.integers(min_value=0, max_value=4000))


def _real(fmt: str, h: int, w: int, seed: int, grey: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 2)
    if grey:
        return ic.compress_array(img[..., 0], fmt)
    return ic.encode_compressed(img, fmt)


#: A few real images to damage: jpeg and png, colour and grey, odd and even sizes.
REAL = [_real("jpeg", 24, 40, 1), _real("jpeg", 17, 9, 2, grey=True), _real("png", 12, 30, 3),
        _real("png", 7, 5, 4, grey=True),
        cv2.imencode(".jpg", np.full((16, 24, 3), 99, np.uint8),
                     [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()]


def _check_result(out: np.ndarray, limit: int | None, header: tuple[int, int] | None) -> None:
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.ndim == 3 and out.shape[2] == 3
    if limit is not None:
        assert out.shape[0] * out.shape[1] <= limit
    if header is not None:
        assert out.shape[0] <= header[0] and out.shape[1] <= header[1]


def _decode_raw_or_refuse(encoding, height, width, step, big, data, limit) -> None:
    """decode_image either refuses with an ImageDecodeError or returns an image of the stated
    size within the limit; nothing else may come out."""
    try:
        out = ic.decode_image(encoding, height, width, step, big, data, max_pixels=limit)
    except ic.ImageDecodeError as e:
        event(type(e).__name__)
        return
    event("decoded")
    _check_result(out, limit, None)
    assert out.shape[:2] == (height, width)


@FUZZ
@given(encoding=st.sampled_from(ENCODINGS),
       height=st.one_of(st.integers(-2, 12), st.integers(0, 2**40)),
       width=st.one_of(st.integers(-2, 12), st.integers(0, 2**40)),
       step=st.one_of(st.integers(-4, 80), st.integers(0, 2**42)),
       big=st.booleans(), data=st.binary(max_size=600), limit=LIMITS)
def test_raw_fields_only_raise_decode_errors(encoding, height, width, step, big, data, limit):
    _decode_raw_or_refuse(encoding, height, width, step, big, data, limit)


@FUZZ
@given(encoding=st.sampled_from(sorted(ic.ENCODINGS)), height=st.integers(1, 9),
       width=st.integers(1, 9), pad=st.integers(0, 9), cut=st.integers(0, 40),
       big=st.booleans(), limit=LIMITS, seed=st.integers(0, 3))
def test_raw_valid_layouts_truncated(encoding, height, width, pad, cut, big, limit, seed):
    """Near-valid messages: the right byte count for the size and step, then cut short."""
    lay = ic.ENCODINGS[encoding]
    step = lay.row_bytes(width) + pad * lay.dtype.itemsize
    n = step * lay.rows(height)
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    data = data[:max(0, n - cut)]
    _decode_raw_or_refuse(encoding, height, width, step, big, data, limit)


@FUZZ
@given(prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\xff\xd8\xff\xc0",
                               b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"]),
       data=st.binary(max_size=300), fmt=st.text(max_size=20), limit=LIMITS,
       min_size=st.one_of(st.none(), st.tuples(st.integers(0, 30), st.integers(0, 30))))
def test_random_bytes_into_decode_compressed(prefix, data, fmt, limit, min_size):
    raw = prefix + data
    header = ic.compressed_size(fmt, raw)  # never raises
    assert header is None or (header[0] > 0 and header[1] > 0)
    try:
        out = ic.decode_compressed(fmt, raw, max_pixels=limit, min_size=min_size)
    except ic.ImageDecodeError as e:
        event(type(e).__name__)
        return
    event("decoded")
    _check_result(out, limit, header)


@FUZZ
@given(which=st.integers(0, len(REAL) - 1),
       cut=st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 2000)),
       flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=6),
       limit=LIMITS,
       min_size=st.one_of(st.none(), st.tuples(st.integers(0, 30), st.integers(0, 30))))
def test_damaged_real_images_into_decode_compressed(which, cut, flips, limit, min_size):
    raw = bytearray(REAL[which])
    for pos, bits in flips:
        raw[pos % len(raw)] ^= bits
    raw = bytes(raw[:max(1, len(raw) - cut)])
    header = ic.compressed_size("jpeg", raw)
    try:
        out = ic.decode_compressed("jpeg", raw, max_pixels=limit, min_size=min_size)
    except ic.ImageDecodeError as e:
        event(type(e).__name__)
        if header is not None and limit is not None and header[0] * header[1] > limit:
            assert isinstance(e, ic.ImageTooLarge)
        return
    event("decoded")
    _check_result(out, limit, header)
    assert header is not None


@pytest.mark.parametrize("which", range(len(REAL)))
def test_undamaged_real_images_decode(which):
    """The fuzz inputs are valid before they are damaged (else the test above proves little)."""
    h, w = ic.compressed_size("", REAL[which])
    assert ic.decode_compressed("", REAL[which]).shape == (h, w, 3)
