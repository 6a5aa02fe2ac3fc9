"""Inference options for the authors' models: foreground map, majority class vote, BGR input
and resizing without antialias."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stemseg_core.config import load_config
from stemseg_core.inference.clustering import cluster_clip_labels
from stemseg_core.inference.preprocess import geometry, prepare_frame


def _one_blob(t: int = 1, h: int = 4, w: int = 4):
    emb = np.zeros((2, t, h, w), np.float32)  # every pixel on one centre: one instance takes all
    prec = np.ones((2, t, h, w), np.float32)
    seed = np.full((t, h, w), 0.9, np.float32)
    return emb, prec, seed


def test_foreground_map_decides_the_candidates():
    emb, prec, seed = _one_blob()
    semantic = np.zeros((3, 1, 4, 4), np.float32)
    semantic[0] = 10.0  # the class channels call every pixel background
    fg = np.zeros((1, 4, 4), np.float32)
    fg[0, :2] = 0.8  # the foreground channel says: the top half
    plain = cluster_clip_labels(emb, prec, seed, semantic, foreground_threshold=0.5)
    assert len(plain) == 0
    with_fg = cluster_clip_labels(emb, prec, seed, semantic, foreground=fg,
                                  foreground_threshold=0.5)
    assert len(with_fg) == 1
    assert ((with_fg.labels[0] == 0) == (fg[0] > 0.5)).all()


def test_majority_vote_counts_pixels_not_logits():
    emb, prec, seed = _one_blob(h=2, w=2)
    semantic = np.zeros((3, 1, 2, 2), np.float32)
    semantic[2] = 1.0  # three pixels: pedestrian by a little
    semantic[1, 0, 0, 0] = 20.0  # one pixel: car by a lot
    mean = cluster_clip_labels(emb, prec, seed, semantic, foreground_threshold=0.0)
    vote = cluster_clip_labels(emb, prec, seed, semantic, foreground_threshold=0.0,
                               class_vote="majority")
    assert mean.class_ids == [1] and vote.class_ids == [2]
    semantic[0] = 30.0  # all pixels vote background: the mean-logit rule decides
    assert cluster_clip_labels(emb, prec, seed, semantic, foreground_threshold=0.0,
                               class_vote="majority").class_ids == [1]


def test_prepare_frame_bgr_and_no_antialias():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    geo = geometry(64, 96, 32, 48)  # shrink by 2
    bgr = prepare_frame(rgb, geo, [1.0, 2.0, 3.0], channel_order="bgr", antialias=False)
    src = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1).float()[None]
    ref = F.interpolate(src, size=(32, 48), mode="bilinear", align_corners=False)[0]
    assert bgr.shape == (3, 32, 64)
    np.testing.assert_allclose(bgr[:, :, :48], ref.numpy(), atol=1e-4, rtol=0)
    assert (bgr[:, :, 48:] == np.array([1.0, 2.0, 3.0], np.float32)[:, None, None]).all()
    smooth = prepare_frame(rgb, geo, [1.0, 2.0, 3.0], channel_order="bgr")
    assert np.abs(smooth[:, :, :48] - ref.numpy()).max() > 1.0  # the default antialiases
    aa = F.interpolate(src, size=(32, 48), mode="bilinear", align_corners=False,
                       antialias=True)[0].numpy()
    np.testing.assert_allclose(smooth[:, :, :48], aa, atol=1e-4, rtol=0)  # ... as torch does


@pytest.mark.parametrize("dataset", ["kitti_mots", "davis", "youtube_vis"])
def test_official_mask_threshold_is_their_primary_rule(dataset):
    """The authors' clusterer takes p = exp(-d / 2) with d the Mahalanobis distance itself (not
    squared) and keeps p > 0.5: d < 2 ln 2. Our p is exp(-d^2 / 2); the official configs'
    mask_threshold must draw the same line."""
    thr = load_config(f"config/model/official_{dataset}.yaml").inference.mask_threshold
    r = np.array([0.0, 1.0, 1.38, 1.39, 2.0], np.float32)  # 2 ln 2 = 1.3863
    emb = r.reshape(1, 1, 1, 5)
    seed = np.array([[[0.99, 0.1, 0.1, 0.1, 0.1]]], np.float32)
    clusters = cluster_clip_labels(emb, np.ones_like(emb), seed, None,
                                   seediness_threshold=0.5, foreground_threshold=0.0,
                                   mask_threshold=thr, max_instances=1)
    theirs = [bool(np.exp(-0.5 * x) > 0.5) for x in r]
    got = (clusters.labels.reshape(-1) == 0).tolist()
    assert got == theirs == [True, True, True, False, False]
