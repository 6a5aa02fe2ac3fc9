"""Overlays, track-ID images and contact sheets."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.types import TrackedInstance
from stemseg_core.visualize import contact_sheet, draw_overlay, track_colour

H, W = 48, 64


def _rect(y0, x0, h, w):
    m = np.zeros((H, W), bool)
    m[y0:y0 + h, x0:x0 + w] = True
    return m


def _instances():
    return [TrackedInstance(3, 1, "car", 0.9, _rect(5, 5, 20, 20)),
            TrackedInstance(70000, 2, "pedestrian", 0.4, _rect(15, 15, 20, 30))]


def test_track_colour_deterministic_and_distinct():
    assert track_colour(5) == track_colour(5)
    cols = [track_colour(i) for i in range(1, 41)]
    assert len(set(cols)) == 40
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
               for c in cols)
    # Consecutive ids are far apart in colour.
    for a, b in zip(cols, cols[1:]):
        assert sum(abs(x - y) for x, y in zip(a, b)) > 60


def test_overlay_colours_per_track():
    image = np.full((H, W, 3), 100, np.uint8)
    out = draw_overlay(image, _instances(), alpha=0.5, labels=False, contours=False)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert (out[0, 0] == 100).all()  # background untouched
    a, b = out[12, 12].astype(int), out[30, 40].astype(int)
    assert not np.array_equal(a, b)
    expected = np.round(0.5 * 100 + 0.5 * np.array(track_colour(3)))
    assert np.abs(a - expected).max() <= 1
    # BGR output: a red RGB image comes back with red in the last channel.
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    assert draw_overlay(red, [])[0, 0].tolist() == [0, 0, 255]
    # Labels and contours draw something beyond the blended fill.
    full = draw_overlay(image, _instances())
    assert not np.array_equal(full, out)


def test_contact_sheet():
    imgs = [np.zeros((40, 80, 3), np.uint8), np.full((20, 20), 255, np.uint8),
            np.full((30, 60, 3), 128, np.uint8)]
    sheet = contact_sheet(imgs, cols=2, tile_width=50, pad=2)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    # 2 rows of tile height max(25, 50, 25) = 50, 2 columns of 50 px, 2 px padding.
    assert sheet.shape == (2 * 50 + 3 * 2, 2 * 50 + 3 * 2, 3)
    assert sheet[2 + 10, 2 + 50 + 2 + 10].tolist() == [255, 255, 255]
    with pytest.raises(ValueError):
        contact_sheet([], 2, 50)


def test_contact_sheet_at_full_size_is_a_plain_grid():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]
    sheet = contact_sheet(imgs, cols=2, tile_width=None, pad=0)
    blank = np.zeros_like(imgs[0])
    grid = np.concatenate([np.concatenate(imgs[:2], 1), np.concatenate([imgs[2], blank], 1)], 0)
    np.testing.assert_array_equal(sheet, grid)
    with pytest.raises(ValueError, match="pad >= 0"):
        contact_sheet(imgs, pad=-1)
