"""Training losses of STEm-Seg (paper sec. 3.4 and supplementary I; authors' weights in cfg.loss).

All functions take plain tensors of *one clip* whose pixels are flattened and already restricted
to the non-ignored pixels (P of them):

- ``embeddings`` (E, P), ``precisions`` (E, P) = 1 / variance > 0, ``raw_variance`` (V, P),
  ``seediness`` (P,) in [0, 1], ``semantic_logits`` (C, P), ``masks`` bool (N, P).

:func:`clip_losses` does the flattening/ignore handling for a (E, T, h, w) clip.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted descending.

    For the first i+1 sorted pixels predicted "wrong", the Jaccard loss is
    J_i = 1 - |gt \\ wrong_i| / |gt ∪ wrong_i|; the gradient is J_0, J_1 - J_0, J_2 - J_1, ...
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary Lovász hinge loss (Berman et al., CVPR 2018) of 1-D ``logits`` vs ``labels`` {0, 1}.

    Hinge errors 1 - logit * sign (sign = +1 for foreground, -1 for background) are sorted in
    descending order and the Lovász extension of the Jaccard loss is evaluated at relu(errors).
    Empty input gives 0 (connected to ``logits`` so backward works).
    """
    logits = logits.reshape(-1)
    labels = labels.reshape(-1)
    if logits.numel() == 0:
        return logits.sum() * 0.0
    labels_f = labels.to(logits.dtype)
    signs = 2.0 * labels_f - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    grad = lovasz_grad(labels_f[perm])
    return torch.dot(F.relu(errors_sorted), grad)


def instance_gaussians(embeddings: torch.Tensor, precisions: torch.Tensor,
                       masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per instance mean embedding and mean precision over its pixels (paper eq. 1).

    -> (mu (N, E), inv_sigma (N, E)). Every instance must have at least one pixel.
    """
    m = masks.to(embeddings.dtype)  # (N, P)
    counts = m.sum(dim=1, keepdim=True).clamp_min(1.0)
    mu = (m @ embeddings.t()) / counts
    inv_sigma = (m @ precisions.t()) / counts
    return mu, inv_sigma


def instance_probabilities(embeddings: torch.Tensor, precisions: torch.Tensor,
                           masks: torch.Tensor) -> torch.Tensor:
    """p_ij = exp(-1/2 sum_d prec_jd (e_id - mu_jd)^2) of every pixel i for every instance j.

    -> (N, P) in (0, 1].
    """
    mu, inv_sigma = instance_gaussians(embeddings, precisions, masks)
    diff = embeddings.unsqueeze(0) - mu.unsqueeze(2)  # (N, E, P)
    dist = (diff.pow(2) * inv_sigma.unsqueeze(2)).sum(dim=1)
    return torch.exp(-0.5 * dist)


def embedding_loss(probs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over instances of the Lovász hinge of logits 2p - 1 vs the instance's mask."""
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    losses = [lovasz_hinge_flat(2.0 * p - 1.0, m) for p, m in zip(probs, masks)]
    return torch.stack(losses).mean()


def smoothness_loss(raw_variance: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over instances of the mean squared deviation of raw variance from its instance mean.

    ``raw_variance`` (V, P) are the pre-exp head outputs (authors' choice); the mean runs over the
    instance's pixels and the V dims. V == 0 (no learned variance) or N == 0 gives 0.
    """
    n = masks.shape[0]
    if n == 0 or raw_variance.shape[0] == 0:
        return raw_variance.sum() * 0.0
    m = masks.to(raw_variance.dtype)  # (N, P)
    counts = m.sum(dim=1).clamp_min(1.0)  # (N,)
    mean = (m @ raw_variance.t()) / counts.unsqueeze(1)  # (N, V)
    sq = (raw_variance.unsqueeze(0) - mean.unsqueeze(2)).pow(2)  # (N, V, P)
    per_inst = (sq * m.unsqueeze(1)).sum(dim=(1, 2)) / (counts * raw_variance.shape[0])
    return per_inst.mean()


def seediness_target(probs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(P,) target heat map: p_ij (detached) on instance j's pixels, 0 on background.

    Where instances overlap the larger probability is used.
    """
    p = probs.detach() * masks.to(probs.dtype)
    if p.shape[0] == 0:
        return p.new_zeros(p.shape[1:])
    return p.max(dim=0).values


def small_instance_weights(masks: torch.Tensor, area: float) -> torch.Tensor:
    """(P,) pixel weights: A / n on the pixels of an instance of n < A pixels, else 1.

    Where instances overlap the larger weight is used. ``area`` <= 0 gives all ones.
    """
    masks = masks.bool()
    if area <= 0 or masks.shape[0] == 0:
        return torch.ones(masks.shape[1:], dtype=torch.float32, device=masks.device)
    per_inst = (area / masks.sum(dim=1).clamp_min(1).float()).clamp_min(1.0)  # (N,)
    return torch.where(masks, per_inst[:, None], 1.0).max(dim=0).values


def seediness_loss(seediness: torch.Tensor, probs: torch.Tensor, masks: torch.Tensor,
                   small_instance_area: float = 0.0) -> torch.Tensor:
    """Mean squared error between the heat map and :func:`seediness_target` over all P pixels.

    small_instance_area > 0: weighted mean with :func:`small_instance_weights` instead.
    """
    if seediness.numel() == 0:
        return seediness.sum() * 0.0
    target = seediness_target(probs, masks)
    if small_instance_area <= 0:
        return F.mse_loss(seediness, target)
    w = small_instance_weights(masks, small_instance_area).to(seediness.dtype)
    return (w * (seediness - target).pow(2)).sum() / w.sum()


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor,
                  class_weights: list[float] | None = None) -> torch.Tensor:
    """Cross-entropy of (C, P) logits vs (P,) class ids (IGNORE_INDEX entries skipped).

    class_weights: optional (C,) per-class weights (weighted mean, as torch's cross_entropy).
    """
    valid = labels != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0
    weight = None if class_weights is None else torch.as_tensor(
        class_weights, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits.t()[valid], labels[valid], weight=weight)


def semantic_labels(masks: torch.Tensor, classes: torch.Tensor, shape: tuple[int, ...],
                    ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel class ids (0 = background) from instance masks (N, *shape); ignore -> -100.

    Later instances win where masks overlap.
    """
    labels = torch.zeros(shape, dtype=torch.long, device=masks.device)
    for m, c in zip(masks, classes):
        labels[m] = int(c)
    if ignore is not None:
        labels[ignore] = IGNORE_INDEX
    return labels


def clip_losses(embeddings: torch.Tensor, precisions: torch.Tensor, raw_variance: torch.Tensor,
                seediness: torch.Tensor, masks: torch.Tensor, ignore: torch.Tensor | None = None,
                semantic_logits: torch.Tensor | None = None,
                classes: torch.Tensor | None = None,
                semantic_class_weights: list[float] | None = None,
                seediness_small_instance_area: float = 0.0,
                teacher: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """All loss terms of one clip at output resolution.

    embeddings/precisions (E, T, h, w), raw_variance (V, T, h, w), seediness (T, h, w),
    masks bool (N, T, h, w), ignore bool (T, h, w) or None, semantic_logits (C, T, h, w) or None,
    classes long (N,) (needed with semantic_logits); seediness_small_instance_area: see
    :func:`seediness_loss`; teacher: a frozen teacher's outputs of the clip without camera effects
    ("embeddings", "precisions", "raw_variance", "seediness"[, "semantic"], same shapes) for
    :func:`distill_loss`. Ignored pixels take no part in any term;
    instances left with no pixel are dropped. Computed in float32.
    -> {"embedding", "smoothness", "seediness"[, "semantic"][, "distill"]} scalars.
    """
    spatial = tuple(embeddings.shape[1:])
    valid = torch.ones(spatial, dtype=torch.bool, device=embeddings.device)
    if ignore is not None:
        valid = ~ignore.bool()
    vflat = valid.reshape(-1)
    npix = vflat.numel()

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.float().reshape(x.shape[0], npix)[:, vflat]

    emb = flat(embeddings)
    prec = flat(precisions)
    raw = flat(raw_variance)
    seed = seediness.float().reshape(-1)[vflat]
    m = masks.bool().reshape(masks.shape[0], npix)[:, vflat]
    keep = m.any(dim=1)
    m = m[keep]
    probs = instance_probabilities(emb, prec, m)
    out = {
        "embedding": embedding_loss(probs, m),
        "smoothness": smoothness_loss(raw, m),
        "seediness": seediness_loss(seed, probs, m, seediness_small_instance_area),
    }
    if semantic_logits is not None:
        if classes is None:
            raise ValueError("clip_losses: semantic_logits given without classes")
        labels = semantic_labels(masks.bool(), classes, spatial, None if ignore is None else
                                 ignore.bool())
        out["semantic"] = semantic_loss(flat(semantic_logits), labels.reshape(-1)[vflat],
                                        semantic_class_weights)
    if teacher is not None:
        student = {"embeddings": emb, "raw_variance": raw, "seediness": seed}
        if semantic_logits is not None:
            student["semantic"] = flat(semantic_logits)
        flat_t = {k: (v.float().reshape(-1)[vflat] if k == "seediness" else flat(v))
                  for k, v in teacher.items()}
        out["distill"] = distill_loss(student, flat_t)
    return out


def distill_loss(student: dict[str, torch.Tensor],
                 teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Teacher term of one clip (not in the paper; cfg.loss.distill): how far the outputs moved
    from a frozen teacher's outputs on the same clip without camera effects.

    Both dicts hold flattened outputs over the P valid pixels: "embeddings" (E, P),
    "raw_variance" (V, P), "seediness" (P,), optionally "semantic" logits (C, P); the teacher's
    also "precisions" (E, P). The sum of
    - embedding: sum_d prec_t,d (e_s,d - e_t,d)^2, the change of the exponent of the teacher's
      Gaussian (eq. 2) the shift costs, and
    - bandwidth: sum_v (r_s,v - r_t,v)^2 of the raw (log) variances,
      both weighted by the teacher's foreground probability w = 1 - p_t(background) (1 without a
      semantic head): background pixels are never clustered;
    - seediness: mean squared difference over all pixels;
    - semantic: KL(teacher || student) of the per-pixel class distributions, mean over pixels.
    """
    emb_s = student["embeddings"].float()
    if emb_s.shape[1] == 0:
        return emb_s.sum() * 0.0
    emb_t = teacher["embeddings"].float()
    sem_t = teacher.get("semantic")
    if sem_t is not None:
        log_t = F.log_softmax(sem_t.float(), dim=0)
        w = 1.0 - log_t[0].exp()
    else:
        w = torch.ones_like(emb_t[0])
    wsum = w.sum().clamp_min(1e-6)
    shift = (teacher["precisions"].float() * (emb_s - emb_t).pow(2)).sum(0)
    total = (w * shift).sum() / wsum
    raw_s, raw_t = student["raw_variance"].float(), teacher["raw_variance"].float()
    if raw_s.shape[0]:
        total = total + (w * (raw_s - raw_t).pow(2).sum(0)).sum() / wsum
    total = total + F.mse_loss(student["seediness"].float(), teacher["seediness"].float())
    sem_s = student.get("semantic")
    if sem_s is not None and sem_t is not None:
        log_s = F.log_softmax(sem_s.float(), dim=0)
        total = total + (log_t.exp() * (log_t - log_s)).sum(0).mean()
    return total
