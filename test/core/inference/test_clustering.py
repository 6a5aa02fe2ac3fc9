"""Clustering of one clip: hand-built outputs with known instances (numpy, as the tracker)."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.clustering import cluster_clip, cluster_clip_labels

T, H, W = 2, 12, 16
# (rows, cols, embedding mean, peak seediness, class) of three blobs
BLOBS = [
    ((slice(1, 5), slice(1, 5)), (0.0, 0.0, 0.0), 0.95, 2),
    ((slice(6, 10), slice(2, 7)), (5.0, 0.0, 0.0), 0.90, 1),
    ((slice(2, 8), slice(10, 15)), (0.0, 5.0, 0.0), 0.85, 2),
]


def make_clip(with_semantic: bool = True):
    g = np.random.default_rng(0)
    emb = np.full((3, T, H, W), 50.0, np.float32)  # background far from everything
    prec = np.ones((3, T, H, W), np.float32)
    seed = np.zeros((T, H, W), np.float32)
    sem = np.zeros((3, T, H, W), np.float32)
    sem[0] = 6.0  # background everywhere ...
    masks = []
    for (rs, cs), mean, peak, cls in BLOBS:
        m = np.zeros((T, H, W), bool)
        m[:, rs, cs] = True
        masks.append(m)
        noise = (0.1 * (g.random((3, T, H, W)) - 0.5)).astype(np.float32)
        emb[:, m] = np.array(mean, np.float32)[:, None] + noise[:, m]
        seed[m] = 0.3
        seed[1, rs.start, cs.start] = peak  # the peak in the second frame
        sem[0][m] = 0.0  # ... except in the blobs
        sem[cls][m] = 4.0
        # a few pixels voting for the other class do not change the mean
        other = 3 - cls
        sem[other, 0, rs.start, cs.start] = 5.0
    return emb, prec, seed, (sem if with_semantic else None), masks


def test_recovers_three_blobs_exactly():
    emb, prec, seed, sem, masks = make_clip()
    inst = cluster_clip(emb, prec, seed, sem, seediness_threshold=0.5, foreground_threshold=0.5,
                        mask_threshold=0.5, max_instances=20)
    assert len(inst) == 3
    for got, want, blob in zip(inst, masks, BLOBS):
        assert np.array_equal(got.mask, want)
        assert got.score == pytest.approx(blob[2])
        assert got.class_id == blob[3]
        assert got.seed == (1, blob[0][0].start, blob[0][1].start)
    # disjoint
    assert int(np.stack([i.mask for i in inst]).sum(0).max()) == 1


def test_stops_at_seediness_threshold_and_max_instances():
    emb, prec, seed, sem, masks = make_clip()
    inst = cluster_clip(emb, prec, seed, sem, seediness_threshold=0.88)
    assert [i.score for i in inst] == pytest.approx([0.95, 0.90])
    inst = cluster_clip(emb, prec, seed, sem, seediness_threshold=0.5, max_instances=1)
    assert len(inst) == 1 and np.array_equal(inst[0].mask, masks[0])


def test_seediness_threshold_by_class():
    emb, prec, seed, sem, masks = make_clip()
    # Global 0.92 keeps only blob 0 (0.95, class 2); car seeds (class 1) need only 0.88.
    inst = cluster_clip(emb, prec, seed, sem, seediness_threshold=0.92,
                        seediness_threshold_by_class={1: 0.88})
    assert [(i.score, i.class_id) for i in inst] == [(pytest.approx(0.95), 2),
                                                     (pytest.approx(0.90), 1)]
    assert np.array_equal(inst[1].mask, masks[1])  # its sub-threshold pixels still join it
    # Pedestrians (class 2) at 0.8: blobs 0 and 2; the car (0.90 < 0.92) is not seeded.
    inst = cluster_clip(emb, prec, seed, sem, seediness_threshold=0.92,
                        seediness_threshold_by_class={2: 0.8})
    assert [i.class_id for i in inst] == [2, 2]
    assert np.array_equal(inst[1].mask, masks[2])
    # Raising a class above the global threshold removes it.
    assert [i.class_id for i in cluster_clip(emb, prec, seed, sem, seediness_threshold=0.5,
                                             seediness_threshold_by_class={2: 0.99})] == [1]


def test_seediness_threshold_by_class_errors():
    emb, prec, seed, sem, _ = make_clip()
    with pytest.raises(ValueError, match="needs a semantic map"):
        cluster_clip(emb, prec, seed, None, seediness_threshold_by_class={1: 0.5})
    with pytest.raises(ValueError, match="class ids must be 1..C-1"):
        cluster_clip(emb, prec, seed, sem, seediness_threshold_by_class={3: 0.5})


def test_seed_below_threshold_gives_nothing():
    emb, prec, seed, sem, _ = make_clip()
    assert cluster_clip(emb, prec, seed * 0.5, sem, seediness_threshold=0.6) == []
    res = cluster_clip_labels(emb, prec, seed * 0.5, sem, seediness_threshold=0.6)
    assert len(res) == 0 and bool((res.labels == -1).all())


def test_without_semantic_uses_seediness_and_class_1():
    emb, prec, seed, _, masks = make_clip(with_semantic=False)
    inst = cluster_clip(emb, prec, seed, None, seediness_threshold=0.5, foreground_threshold=0.2)
    assert len(inst) == 3
    assert all(i.class_id == 1 for i in inst)
    for got, want in zip(inst, masks):
        assert np.array_equal(got.mask, want)


def test_precision_sets_the_extent():
    # one blob whose embedding grows along x: a high precision at the seed keeps only part of it
    emb = np.zeros((1, 1, 1, 10), np.float32)
    emb[0, 0, 0] = np.arange(10, dtype=np.float32)
    seed = np.full((1, 1, 10), 0.3, np.float32)
    seed[0, 0, 0] = 0.9
    prec = np.ones((1, 1, 1, 10), np.float32)  # p > 0.5 <=> |dx| < sqrt(2 ln 2) = 1.18
    inst = cluster_clip(emb, prec, seed, None, seediness_threshold=0.5, foreground_threshold=0.1)
    assert len(inst) == 1 and inst[0].mask[0, 0].tolist() == [True, True] + [False] * 8
    inst = cluster_clip(emb, prec / 100, seed, None, seediness_threshold=0.5,
                        foreground_threshold=0.1)
    assert inst[0].mask[0, 0].sum() == 10  # |dx| < 11.8


def test_bad_shapes_raise():
    emb, prec, seed, sem, _ = make_clip()
    with pytest.raises(ValueError, match="seediness"):
        cluster_clip(emb, prec, seed[0], sem)
    with pytest.raises(ValueError, match="semantic"):
        cluster_clip(emb, prec, seed, sem[:, :1])


def test_center_refinement_recentres_on_the_mask_mean():
    # Embedding = x along a row; seed at x=0; precision 0.25: p > 0.5 <=> |e - mu| < 2.355.
    emb = np.arange(10, dtype=np.float32).reshape(1, 1, 1, 10)
    seed = np.full((1, 1, 10), 0.3, np.float32)
    seed[0, 0, 0] = 0.9
    prec = np.full((1, 1, 1, 10), 0.25, np.float32)

    def mask(steps):
        inst = cluster_clip(emb, prec, seed, None, seediness_threshold=0.5,
                            foreground_threshold=0.1, center_refinement_steps=steps)
        return np.flatnonzero(inst[0].mask[0, 0]).tolist()

    assert mask(0) == [0, 1, 2]        # the paper: centred on the seed pixel, e = 0
    assert mask(1) == [0, 1, 2, 3]     # mean of {0, 1, 2} = 1 -> |e - 1| < 2.355
    assert mask(2) == [0, 1, 2, 3]     # mean 1.5 -> e = 4 is 2.5 away: stays out
    with pytest.raises(ValueError, match="center_refinement_steps"):
        mask(-1)


def _paper_rule(emb, prec, seed, sem, seed_thr, fg_thr, mask_thr, max_instances):
    """The paper's sec. 3.3 loop written plainly (float64, exp form, no working-set tricks)."""
    e = emb.reshape(emb.shape[0], -1).astype(np.float64)
    p = prec.reshape(prec.shape[0], -1).astype(np.float64)
    s = seed.reshape(-1).astype(np.float64)
    logits = sem.reshape(sem.shape[0], -1).astype(np.float64)
    prob = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    free = (1.0 - prob[0]) > fg_thr
    labels = np.full(s.shape, -1)
    for j in range(max_instances):
        if not free.any() or s[free].max() < seed_thr:
            break
        best = int(np.flatnonzero(free)[np.argmax(s[free])])
        mu, pr = e[:, best], p[:, best]
        member = free & (np.exp(-0.5 * (pr[:, None] * (e - mu[:, None]) ** 2).sum(0)) > mask_thr)
        member[best] = True
        labels[member] = j
        free &= ~member
    return labels.reshape(seed.shape)


def test_equals_the_papers_rule_on_random_maps():
    """Random outputs with a few true clusters: the same label map as the plain rule."""
    rng = np.random.default_rng(7)
    t, h, w = 3, 20, 24
    centres = rng.normal(0, 3, (6, 3))
    which = rng.integers(0, 6, (t, h, w))
    emb = (centres[which].transpose(3, 0, 1, 2)
           + rng.normal(0, 0.4, (3, t, h, w))).astype(np.float32)
    prec = rng.uniform(0.5, 2.0, (3, t, h, w)).astype(np.float32)
    seed = rng.uniform(0, 1, (t, h, w)).astype(np.float32)
    sem = rng.normal(0, 1, (3, t, h, w)).astype(np.float32)
    for mask_thr in (0.3, 0.5):
        got = cluster_clip_labels(emb, prec, seed, sem, seediness_threshold=0.2,
                                  foreground_threshold=0.4, mask_threshold=mask_thr,
                                  max_instances=15)
        want = _paper_rule(emb, prec, seed, sem, 0.2, 0.4, mask_thr, 15)
        assert len(got) >= 5
        np.testing.assert_array_equal(got.labels, want)
