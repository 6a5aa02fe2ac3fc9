"""RLE helpers against pycocotools on random and edge-case masks."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stemseg_core.data.rle import (
    counts_to_mask,
    kitti_string_to_mask,
    mask_to_counts,
    mask_to_kitti_string,
)


def _edge_masks():
    rng = np.random.default_rng(0)
    yield "empty", np.zeros((5, 7), bool)
    yield "full", np.ones((5, 7), bool)
    one = np.zeros((9, 4), bool)
    one[0, 0] = True
    yield "first pixel", one
    last = np.zeros((9, 4), bool)
    last[-1, -1] = True
    yield "last pixel", last
    mid = np.zeros((3, 3), bool)
    mid[1, 1] = True
    yield "single centre", mid
    yield "1x1 on", np.ones((1, 1), bool)
    yield "1x1 off", np.zeros((1, 1), bool)
    yield "odd 1x13", rng.random((1, 13)) > 0.5
    yield "odd 17x1", rng.random((17, 1)) > 0.5
    for i in range(20):
        h, w = rng.integers(1, 40, size=2)
        yield f"random {i}", rng.random((h, w)) > rng.uniform(0.05, 0.95)


@pytest.mark.parametrize("name,mask", list(_edge_masks()), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_counts_round_trip_and_match_pycocotools(name, mask):
    h, w = mask.shape
    counts = mask_to_counts(mask)
    assert counts.dtype == np.uint32
    assert int(counts.sum()) == h * w
    assert np.array_equal(counts_to_mask(counts, h, w), mask)
    # pycocotools reads uncompressed counts with the same convention: decoding must agree.
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
    assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    # and the KITTI string made from counts equals the one made from the mask
    s = mask_to_kitti_string(mask)
    assert mask_to_kitti_string(counts_to_mask(counts, h, w)) == s
    assert np.array_equal(kitti_string_to_mask(s, h, w), mask)


def test_counts_are_column_major_with_background_first():
    m = np.array([[1, 0], [1, 1]], bool)  # column-major: 1,1,0,1
    assert mask_to_counts(m).tolist() == [0, 2, 1, 1]
    m2 = np.array([[0, 0], [0, 1]], bool)  # 0,0,0,1
    assert mask_to_counts(m2).tolist() == [3, 1]


def test_counts_with_wrong_total_raise():
    with pytest.raises(ValueError, match="sum to 5 pixels"):
        counts_to_mask([2, 3], 2, 3)


def test_non_2d_mask_raises():
    with pytest.raises(ValueError, match="2-D"):
        mask_to_counts(np.zeros((2, 2, 2), bool))


def test_counts_to_mask_checks_sizes_before_allocating():
    """From a message: 8 bytes of counts must not claim a 4 GiB mask (issue 35)."""
    from stemseg_core.data.rle import MAX_MASK_PIXELS

    with pytest.raises(ValueError, match=r"65535x65535 = 4294836225 pixels is over the limit"):
        counts_to_mask(np.array([0, 65535 * 65535], np.uint32), 65535, 65535)
    with pytest.raises(ValueError, match="negative"):
        counts_to_mask([2], -1, -2)
    with pytest.raises(ValueError, match=r"run 1 is negative \(-3\)"):
        counts_to_mask([5, -3, 4], 2, 3)
    with pytest.raises(ValueError, match=r"sum to 7 pixels but the image has 2x3=6"):
        counts_to_mask([5, 2], 2, 3)
    with pytest.raises(ValueError, match="longer than the 2x3 mask"):  # would wrap int64 sums
        counts_to_mask(np.array([2**63 - 1, 2**63 - 1, 8], np.uint64), 2, 3)
    with pytest.raises(ValueError, match="non-negative integers"):
        counts_to_mask([1.5, 4.5], 2, 3)
    with pytest.raises(ValueError, match="non-negative integers"):
        counts_to_mask([10**30], 2, 3)
    with pytest.raises(ValueError, match=r"8 runs, more than a 2x3 mask can have \(7\)"):
        counts_to_mask([0] * 7 + [6], 2, 3)
    with pytest.raises(ValueError, match="over the limit"):
        counts_to_mask([0, 100], 10, 10, max_pixels=99)
    with pytest.raises(ValueError, match="over the limit"):
        kitti_string_to_mask("0", 100_000, 100_000)
    # at the limit and with the limit lifted, valid masks decode
    m = counts_to_mask([2, 3, 1], 2, 3, max_pixels=6)
    assert m.tolist() == [[False, True, True], [False, True, False]]
    assert counts_to_mask([0, 1], 1, 1, max_pixels=None).tolist() == [[True]]
    assert counts_to_mask([0], 0, 5).shape == (0, 5)
    assert MAX_MASK_PIXELS >= 7680 * 4320  # 8K cameras still decode
