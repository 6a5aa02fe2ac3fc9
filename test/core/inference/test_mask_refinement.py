"""Colour-guided mask refinement: filter identities, edge snapping, crop exactness, fixed masks."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.mask_refinement import guided_filter, refine_labels


def noisy_image(h=40, w=60, seed=0):
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_guided_filter_keeps_constants_and_is_linear():
    guide = noisy_image()
    ones = np.ones((1, 40, 60), np.float32)
    np.testing.assert_allclose(guided_filter(guide, 0.3 * ones, 2, 1e-3), 0.3 * ones, atol=1e-4)
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 40, 60), dtype=np.float32)
    qa, qb, qab = guided_filter(guide, np.stack([a, b, a + b]), 3, 1e-2)
    np.testing.assert_allclose(qa + qb, qab, atol=1e-4)


def test_guided_filter_is_zero_farther_than_2r_from_the_input():
    p = np.zeros((1, 40, 60), np.float32)
    p[0, 20, 30] = 1.0
    q = guided_filter(noisy_image(), p, 2, 1e-3)[0]
    far = np.ones((40, 60), bool)
    far[16:25, 26:35] = False  # within 2r = 4 px of the pixel
    assert np.abs(q[far]).max() < 1e-5 and np.abs(q[~far]).max() > 0.01


def test_a_shifted_mask_snaps_to_the_colour_edge():
    img = np.full((40, 60, 3), 40, np.uint8)
    img[10:22, 20:32] = (220, 30, 30)  # the object: 12x12 px
    truth = np.zeros((40, 60), bool)
    truth[10:22, 20:32] = True
    labels = np.zeros((40, 60), np.int32)
    labels[11:23, 21:33] = 1  # the blocky network mask: 1 px off in x and y

    def iou(m):
        return (m & truth).sum() / (m | truth).sum()

    assert iou(labels == 1) < 0.73
    out = refine_labels(img, labels, {0: 4}, eps=1e-3)
    assert set(np.unique(out)) <= {0, 1}
    assert iou(out == 1) > 0.99
    assert np.array_equal(refine_labels(img, labels, {0: 6}, eps=1e-3) == 1, truth)


def test_crops_give_the_whole_frame_result():
    rng = np.random.default_rng(3)
    img = (rng.random((48, 80, 3)) * 255).astype(np.uint8)
    img[5:20, 5:25] = (200, 200, 50)
    img[25:45, 50:70] = (30, 60, 220)
    labels = np.zeros((48, 80), np.int32)
    labels[6:21, 4:24] = 1
    labels[26:44, 52:71] = 2
    labels[18:24, 22:30] = 3  # touches instance 1
    radii, eps = {0: 2, 1: 4, 2: 3}, 1e-3
    out = refine_labels(img, labels, radii, eps)
    # whole-frame reference: filter every mask over the full image with its own radius, then
    # pick the best (or none)
    guide = img.astype(np.float32) / 255
    q = np.stack([guided_filter(guide, (labels == k + 1).astype(np.float32)[None], r, eps)[0]
                  for k, r in radii.items()])
    ref = np.where(q.max(0) > 1 - q.sum(0), q.argmax(0) + 1, 0)
    assert np.array_equal(out, ref)


def test_instances_not_refined_keep_every_pixel_and_lose_none():
    img = np.full((30, 30, 3), 100, np.uint8)
    img[5:25, 5:25] = 250  # one bright block holding both instances
    labels = np.zeros((30, 30), np.int32)
    labels[8:20, 8:14] = 1  # refined: its border is re-decided ...
    labels[8:20, 14:20] = 2  # ... but it never takes pixels of instance 2 (not refined)
    labels[2:4, 2:4] = 3  # a higher label, not refined either
    out = refine_labels(img, labels, {0: 3}, eps=1e-3)
    assert np.array_equal(out == 2, labels == 2)
    assert np.array_equal(out == 3, labels == 3)
    assert (out == 1).sum() > 0 and not np.array_equal(out == 1, labels == 1)
    assert np.array_equal(refine_labels(img, labels, {}, 1e-3), labels)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="radius"):
        guided_filter(noisy_image(), np.zeros((1, 40, 60), np.float32), 0, 1e-3)
    with pytest.raises(ValueError, match="eps"):
        guided_filter(noisy_image(), np.zeros((1, 40, 60), np.float32), 2, 0.0)
    with pytest.raises(ValueError, match="differ in size"):
        refine_labels(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 12), np.int32), {0: 2},
                      1e-3)


def test_guided_filter_equals_ridge_regression_per_window():
    """Away from the border: the mean over the windows holding a pixel of each window's ridge
    fit p ~ a . I + b (penalty eps |a|^2, eps scaled by the window size as the filter does)."""
    rng = np.random.default_rng(5)
    guide = rng.random((20, 20, 3), dtype=np.float32)
    p = (rng.random((20, 20)) > 0.5).astype(np.float32)
    r, eps = 2, 0.05
    y, x = 10, 9
    preds = []
    for wy in range(y - r, y + r + 1):
        for wx in range(x - r, x + r + 1):
            win = (slice(wy - r, wy + r + 1), slice(wx - r, wx + r + 1))
            i = guide[win].reshape(-1, 3).astype(np.float64)
            t = p[win].reshape(-1).astype(np.float64)
            ic = i - i.mean(0)
            n = len(t)
            a = np.linalg.solve(ic.T @ ic / n + eps * np.eye(3), ic.T @ (t - t.mean()) / n)
            b = t.mean() - a @ i.mean(0)
            preds.append(a @ guide[y, x] + b)
    q = guided_filter(guide, p[None], r, eps)[0]
    assert q[y, x] == pytest.approx(np.mean(preds), abs=1e-4)
