"""Clustering of one clip into instance mask tubes (paper sec. 3.3, "Inference").

Given the network outputs of one clip (one batch element), instances are found one at a time:

1. candidates = pixels whose foreground probability exceeds ``foreground_threshold``: the
   model's own foreground map where it has one (the authors' models), else 1 -
   softmax(semantic)[background]; without either, pixels whose seediness exceeds it;
2. seed = the remaining candidate with the highest seediness; stop when it is below
   ``seediness_threshold`` (or after ``max_instances``). Optionally per class (not in the paper):
   a candidate whose most likely class has an entry in ``seediness_threshold_by_class`` needs that
   seediness instead, e.g. a lower one for small pedestrians, whose seediness peaks lower;
3. the instance is the Gaussian N(mu, diag(1/precision)) with mu and precision taken at the seed:
   p_i = exp(-1/2 sum_d prec_d (e_id - mu_d)^2); the mask tube is {remaining candidates: p_i >
   ``mask_threshold``} plus the seed itself;
3b. optional (``center_refinement_steps`` > 0, not in the paper): mu and precision are replaced by
   the mean embedding and mean precision of that tube and the tube is recomputed, that many times.
   A seed is one pixel, often off the centre of a thin or partly occluded object; the tube's mean
   is a steadier centre (fewer fragments left behind as extra instances);
4. those pixels leave the candidate set; repeat.

An instance's class is the argmax of its pixels' mean semantic logits (``class_vote``
"mean_logits"), or the class most of its pixels' argmax names, background votes ignored
("majority", the authors'; where no pixel votes for a class, the mean-logit rule decides).

Everything is numpy float32 (the torch version's operations in the same order, so the same
instances come out); the only Python loop is over instances (<= max_instances). Since seeds are
taken in decreasing seediness (the first pixel wins a tie), the instances come out sorted by score
(highest first) and their masks are disjoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ClipInstance:
    """One instance tube of a clip.

    mask: (T, h, w) bool array at the model's output resolution.
    score: seediness at the seed pixel. class_id: index into the model's class names (>= 1).
    seed: (t, y, x) of the seed pixel.
    """

    mask: np.ndarray
    score: float
    class_id: int
    seed: tuple[int, int, int]


@dataclass
class ClipClusters:
    """All instances of one clip as one label map.

    labels: (T, h, w) int64, -1 = no instance, j = instance j. scores/class_ids/seeds: per
    instance, sorted by score (highest first).
    """

    labels: np.ndarray
    scores: list[float]
    class_ids: list[int]
    seeds: list[tuple[int, int, int]]

    def __len__(self) -> int:
        return len(self.scores)

    def instances(self) -> list[ClipInstance]:
        return [ClipInstance(mask=self.labels == j, score=self.scores[j],
                             class_id=self.class_ids[j], seed=self.seeds[j])
                for j in range(len(self))]


def cluster_clip(embeddings: np.ndarray, precisions: np.ndarray, seediness: np.ndarray,
                 semantic: np.ndarray | None = None, *, seediness_threshold: float = 0.5,
                 foreground_threshold: float = 0.5, mask_threshold: float = 0.5,
                 max_instances: int = 20, center_refinement_steps: int = 0,
                 seediness_threshold_by_class: dict[int, float] | None = None,
                 foreground: np.ndarray | None = None, class_vote: str = "mean_logits"
                 ) -> list[ClipInstance]:
    """Cluster one clip's outputs into instances (highest score first, disjoint masks).

    embeddings, precisions: (E, T, h, w); seediness: (T, h, w) in [0, 1]; semantic: optional
    (C, T, h, w) logits with class 0 = background. Without a semantic map every instance gets
    class 1.
    """
    return cluster_clip_labels(
        embeddings, precisions, seediness, semantic, seediness_threshold=seediness_threshold,
        foreground_threshold=foreground_threshold, mask_threshold=mask_threshold,
        max_instances=max_instances, center_refinement_steps=center_refinement_steps,
        seediness_threshold_by_class=seediness_threshold_by_class, foreground=foreground,
        class_vote=class_vote).instances()


def _check_inputs(embeddings: np.ndarray, precisions: np.ndarray, seediness: np.ndarray,
                  semantic: np.ndarray | None, foreground: np.ndarray | None,
                  class_vote: str, center_refinement_steps: int,
                  by_class: dict[int, float]) -> None:
    """ValueError naming the first input of cluster_clip_labels with a wrong shape or value."""
    if embeddings.ndim != 4 or precisions.shape != embeddings.shape:
        raise ValueError(f"embeddings/precisions must both be (E, T, h, w), got "
                         f"{tuple(embeddings.shape)} and {tuple(precisions.shape)}")
    _e, t, h, w = embeddings.shape
    if tuple(seediness.shape) != (t, h, w):
        raise ValueError(f"seediness must be (T, h, w) = {(t, h, w)}, got "
                         f"{tuple(seediness.shape)}")
    if semantic is not None and (semantic.ndim != 4 or tuple(semantic.shape[1:]) != (t, h, w)):
        raise ValueError(f"semantic must be (C, T, h, w) with (T, h, w) = {(t, h, w)}, got "
                         f"{tuple(semantic.shape)}")
    if semantic is not None and semantic.shape[0] < 2:
        raise ValueError("semantic needs at least 2 classes (background + one)")
    if foreground is not None and tuple(foreground.shape) != (t, h, w):
        raise ValueError(f"foreground must be (T, h, w) = {(t, h, w)}, got "
                         f"{tuple(foreground.shape)}")
    if class_vote not in ("mean_logits", "majority"):
        raise ValueError(f"class_vote must be 'mean_logits' or 'majority', got {class_vote!r}")
    if center_refinement_steps < 0:
        raise ValueError(f"center_refinement_steps must be >= 0, got {center_refinement_steps}")
    if by_class and semantic is None:
        raise ValueError("seediness_threshold_by_class needs a semantic map (class per pixel)")
    bad = {c: v for c, v in by_class.items()
           if not (semantic is not None and 1 <= c < semantic.shape[0])}
    if bad:
        raise ValueError(f"seediness_threshold_by_class: class ids must be 1..C-1, got {bad}")


def _candidates(seed_map: np.ndarray, sem_flat: np.ndarray | None,
                foreground: np.ndarray | None, threshold: float) -> np.ndarray:
    """(T*h*w,) bool: the pixels clustered (foreground channel, else 1 - P(background), else
    seediness above ``threshold``; compared in float32, as torch compares with a scalar)."""
    threshold = np.float32(threshold)
    if foreground is not None:
        return foreground.reshape(-1).astype(np.float32, copy=False) > threshold
    if sem_flat is not None:
        fg_prob = np.float32(1.0) - softmax(sem_flat, axis=0)[0]
        return fg_prob > threshold
    return seed_map > threshold


def softmax(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """float32 softmax along ``axis`` (exp of x - max, over the sum: torch.softmax's steps)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _vote_classes(assign: np.ndarray, sem_c: np.ndarray | None, n: int,
                  class_vote: str) -> list[int]:
    """Class id of each of the ``n`` instances from the (C, K) semantic logits of the
    candidates and their instance (``assign``, -1 = none); 1 for all without semantics."""
    if n > 0 and sem_c is not None:
        # Mean logits per instance over its pixels (summed in candidate order, float32).
        sel = assign >= 0
        sums = np.zeros((n, sem_c.shape[0]), np.float32)
        np.add.at(sums, assign[sel], sem_c[:, sel].T)
        counts = np.maximum(np.bincount(assign[sel], minlength=n), 1).astype(np.float32)
        mean = sums / counts[:, None]
        by_mean = mean[:, 1:].argmax(axis=1) + 1
        if class_vote == "majority":
            pixel_class = sem_c.argmax(axis=0)  # (K,), background included
            voting = sel & (pixel_class > 0)
            votes = np.zeros((n, sem_c.shape[0]), np.int64)
            np.add.at(votes, (assign[voting], pixel_class[voting]), 1)
            by_mean = np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), by_mean)
        return by_mean.tolist()
    return [1] * n


def _seed_values(seeds: np.ndarray, sem_c: np.ndarray | None, threshold: float,
                 by_class: dict[int, float]) -> np.ndarray:
    """(K,) seediness of the candidates, -1 where below their class's threshold: those are
    never a seed but stay free to join an instance."""
    seeds = seeds.copy()
    thr: float | np.ndarray = np.float32(threshold)
    if by_class:
        thr_table = np.full((sem_c.shape[0],), thr, np.float32)
        for c, v in by_class.items():
            thr_table[c] = float(v)
        thr = thr_table[sem_c[1:].argmax(axis=0) + 1]  # (K,) per candidate pixel
    seeds[seeds < thr] = -1.0
    return seeds


def cluster_clip_labels(embeddings: np.ndarray, precisions: np.ndarray,
                        seediness: np.ndarray, semantic: np.ndarray | None = None, *,
                        seediness_threshold: float = 0.5, foreground_threshold: float = 0.5,
                        mask_threshold: float = 0.5, max_instances: int = 20,
                        center_refinement_steps: int = 0,
                        seediness_threshold_by_class: dict[int, float] | None = None,
                        foreground: np.ndarray | None = None,
                        class_vote: str = "mean_logits") -> ClipClusters:
    """As :func:`cluster_clip`, but returns one label map instead of one mask per instance.

    seediness_threshold_by_class: {class id (>= 1): threshold} replacing ``seediness_threshold``
    for seed pixels of that class (the pixel's most likely non-background class in ``semantic``);
    needs ``semantic``. Such pixels can still join another seed's instance.
    foreground: optional (T, h, w) foreground probabilities deciding the candidates.
    class_vote: "mean_logits" or "majority" (module docstring).
    """
    by_class = dict(seediness_threshold_by_class or {})
    _check_inputs(embeddings, precisions, seediness, semantic, foreground, class_vote,
                  center_refinement_steps, by_class)
    e_dims, t, h, w = embeddings.shape
    f32 = np.float32
    seed_map = np.asarray(seediness, f32).reshape(-1)
    sem_flat = (np.asarray(semantic, f32).reshape(semantic.shape[0], -1)
                if semantic is not None else None)
    candidates = _candidates(seed_map, sem_flat, foreground, foreground_threshold)
    idx = np.flatnonzero(candidates)  # (K,) flat indices
    k = idx.size
    if k == 0 or max_instances <= 0:
        return ClipClusters(np.full((t, h, w), -1, np.int64), [], [], [])
    emb = np.asarray(embeddings, f32).reshape(e_dims, -1)[:, idx]  # (E, K)
    prec_all = np.asarray(precisions, f32).reshape(e_dims, -1)
    sem_c = sem_flat[:, idx] if sem_flat is not None else None

    # Working set: the candidates not assigned yet, compacted whenever it has halved.
    # pos maps a working position to its candidate number (0..K-1); seeds of assigned = -1.
    pos = np.arange(k)
    seeds = _seed_values(seed_map[idx], sem_c, seediness_threshold, by_class)
    free = np.ones(k, bool)
    work_emb = emb
    assign = np.full((k,), -1, np.int64)  # candidate -> instance
    scores: list[float] = []
    seed_flat: list[int] = []
    log_thr = f32(-2.0 * math.log(mask_threshold) if mask_threshold > 0 else math.inf)
    n_left = k
    for j in range(max_instances):
        best = int(np.argmax(seeds))
        best_val_f = float(seeds[best])
        if best_val_f < 0:
            break
        mu = work_emb[:, best]
        prec = prec_all[:, idx[pos[best]]]
        for step in range(center_refinement_steps + 1):
            # p > thr  <=>  d = sum prec (e - mu)^2 < -2 log(thr): no exp over all pixels.
            d = prec @ np.square(work_emb - mu[:, None])
            member = (d < log_thr) & free
            member[best] = True
            if step < center_refinement_steps:
                mu = work_emb[:, member].mean(axis=1, dtype=f32)
                prec = prec_all[:, idx[pos[member]]].mean(axis=1, dtype=f32)
        hit = np.flatnonzero(member)
        seeds[hit] = -1.0
        free[hit] = False
        assign[pos[hit]] = j
        scores.append(best_val_f)
        seed_flat.append(int(idx[pos[best]]))
        n_left -= hit.size
        if n_left <= 0:
            break
        if 2 * n_left < seeds.size:
            keep = np.flatnonzero(free)
            pos, seeds, work_emb, free = pos[keep], seeds[keep], work_emb[:, keep], free[keep]

    class_ids = _vote_classes(assign, sem_c, len(scores), class_vote)
    labels = np.full((t * h * w,), -1, np.int64)
    labels[idx] = assign
    seeds_thw = [(s // (h * w), (s // w) % h, s % w) for s in seed_flat]
    return ClipClusters(labels.reshape(t, h, w), scores, [int(c) for c in class_ids], seeds_thw)
