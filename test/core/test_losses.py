"""Losses: Lovász hinge by hand and against a brute-force Lovász extension; every loss term on a
hand-built 2-instance toy clip against independent numpy loops; ignore and zero-instance cases."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from stemseg_core import losses as L


def test_lovasz_perfect_logits_give_zero():
    logits = torch.tensor([3.0, 1.0, -1.0, -4.0])
    labels = torch.tensor([1, 1, 0, 0])
    assert L.lovasz_hinge_flat(logits, labels).item() == pytest.approx(0.0)


def test_lovasz_two_elements_by_hand():
    # logits [0.5, 0.0], labels [1, 0]: hinge errors 1-0.5=0.5 (fg), 1+0=1.0 (bg).
    # Sorted desc: [1.0 (bg), 0.5 (fg)] -> gt_sorted [0, 1]; |gt| = 1.
    # Jaccard loss after k wrong: k=1: I=1, U=2 -> 0.5 ; k=2: I=0, U=2 -> 1.
    # grad = [0.5, 0.5] -> loss = 1.0*0.5 + 0.5*0.5 = 0.75
    loss = L.lovasz_hinge_flat(torch.tensor([0.5, 0.0]), torch.tensor([1, 0]))
    assert loss.item() == pytest.approx(0.75)


def test_lovasz_three_elements_by_hand():
    # logits [1.5, -0.5, 0.2], labels [1, 1, 0]: errors -0.5 (fg), 1.5 (fg), 1.2 (bg).
    # Sorted desc: 1.5 (fg), 1.2 (bg), -0.5 (fg); |gt| = 2.
    # J_1 = 1 - 1/2 = 0.5; J_2 = 1 - 1/3 = 2/3; J_3 = 1 - 0/3 = 1 -> grad [0.5, 1/6, 1/3]
    # loss = 1.5*0.5 + 1.2/6 + 0*1/3 = 0.95
    loss = L.lovasz_hinge_flat(torch.tensor([1.5, -0.5, 0.2]), torch.tensor([1, 1, 0]))
    assert loss.item() == pytest.approx(0.95)


def _lovasz_bruteforce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Lovász extension of the Jaccard set loss evaluated at the hinge errors, via sets."""
    errors = np.maximum(1.0 - logits * (2 * labels - 1), 0.0)
    gt = {i for i in range(len(labels)) if labels[i]}

    def jaccard_loss(wrong: set[int]) -> float:
        union = gt | wrong
        if not union:
            return 0.0
        return 1.0 - len(gt - wrong) / len(union)

    order = np.argsort(-errors, kind="stable")
    total, prev, chosen = 0.0, 0.0, set()
    for i in order:
        chosen.add(int(i))
        cur = jaccard_loss(chosen)
        total += errors[i] * (cur - prev)
        prev = cur
    return total


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_matches_bruteforce(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=9)
    labels = (rng.random(9) > 0.5).astype(np.int64)
    ours = L.lovasz_hinge_flat(torch.tensor(logits), torch.tensor(labels)).item()
    assert ours == pytest.approx(_lovasz_bruteforce(logits, labels), abs=1e-9)


def test_lovasz_empty_gives_zero_with_grad():
    logits = torch.zeros(0, requires_grad=True)
    loss = L.lovasz_hinge_flat(logits, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_lovasz_gradient_pushes_the_right_way():
    logits = torch.tensor([0.2, 0.3], requires_grad=True)
    L.lovasz_hinge_flat(logits, torch.tensor([1, 0])).backward()
    assert logits.grad[0] < 0 < logits.grad[1]  # raise fg logit, lower bg logit


# ---------------------------------------------------------------------------------------------
# Toy clip: E = 2, P = 6 pixels, two instances {0, 1} and {3, 4}, background {2, 5}.

EMB = np.array([[0.0, 0.2, 1.0, 2.0, 2.4, -1.0],
                [0.0, 0.2, 1.0, 1.0, 1.0, 3.0]])
PREC = np.array([[1.0, 3.0, 5.0, 2.0, 4.0, 7.0],
                 [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]])
RAW = np.array([[0.1, 0.5, 9.0, -1.0, 1.0, 9.0]])
MASKS = np.array([[1, 1, 0, 0, 0, 0],
                  [0, 0, 0, 1, 1, 0]], dtype=bool)


def _probs_by_loops() -> np.ndarray:
    p = np.zeros((2, 6))
    for j in range(2):
        idx = np.where(MASKS[j])[0]
        mu = [np.mean([EMB[d, i] for i in idx]) for d in range(2)]
        prec = [np.mean([PREC[d, i] for i in idx]) for d in range(2)]
        for i in range(6):
            q = sum(prec[d] * (EMB[d, i] - mu[d]) ** 2 for d in range(2))
            p[j, i] = math.exp(-0.5 * q)
    return p


def _t(a, dtype=torch.float64):
    return torch.tensor(a, dtype=dtype)


def test_instance_probabilities_toy():
    p = L.instance_probabilities(_t(EMB), _t(PREC), torch.tensor(MASKS))
    expected = _probs_by_loops()
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12)
    # instance 0: mu = (0.1, 0.1), prec = (2, 2) -> pixel 0: exp(-0.5 * (2*0.01 + 2*0.01))
    assert p[0, 0].item() == pytest.approx(math.exp(-0.02))


def test_embedding_loss_toy():
    probs = _t(_probs_by_loops())
    loss = L.embedding_loss(probs, torch.tensor(MASKS))
    expected = np.mean([_lovasz_bruteforce(2 * probs[j].numpy() - 1, MASKS[j].astype(int))
                        for j in range(2)])
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_smoothness_loss_toy():
    # instance 0: raw {0.1, 0.5} mean 0.3 -> ((0.2)^2 + (0.2)^2) / 2 = 0.04
    # instance 1: raw {-1, 1} mean 0 -> (1 + 1) / 2 = 1 ; mean over instances = 0.52
    loss = L.smoothness_loss(_t(RAW), torch.tensor(MASKS))
    assert loss.item() == pytest.approx(0.52)


def test_seediness_loss_toy():
    probs = _probs_by_loops()
    seed = np.array([0.9, 0.1, 0.3, 0.5, 0.5, 0.0])
    target = np.where(MASKS[0], probs[0], 0.0) + np.where(MASKS[1], probs[1], 0.0)
    expected = np.mean((seed - target) ** 2)
    loss = L.seediness_loss(_t(seed), _t(probs, torch.float64).requires_grad_(), _t(MASKS))
    assert loss.item() == pytest.approx(expected)
    assert not L.seediness_target(_t(probs).requires_grad_(), torch.tensor(MASKS)).requires_grad


def test_small_instance_weights_by_hand():
    # instance 0: 2 pixels, instance 1: 3 pixels, pixel 5 background; A = 6 -> weights 3 and 2.
    masks = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0]], dtype=torch.bool)
    assert L.small_instance_weights(masks, 6.0).tolist() == [3.0, 3.0, 2.0, 2.0, 2.0, 1.0]
    # A = 2.5: instance 0 (2 px) -> 1.25, instance 1 (3 px) is not small -> 1.
    assert L.small_instance_weights(masks, 2.5).tolist() == [1.25, 1.25, 1.0, 1.0, 1.0, 1.0]
    assert L.small_instance_weights(masks, 0.0).tolist() == [1.0] * 6


def test_seediness_loss_small_instance_weighting():
    probs = _probs_by_loops()
    seed = np.array([0.9, 0.1, 0.3, 0.5, 0.5, 0.0])
    target = np.where(MASKS[0], probs[0], 0.0) + np.where(MASKS[1], probs[1], 0.0)
    sizes = MASKS.sum(axis=1)
    w = np.ones(6)
    for j in range(2):  # A = 10: every toy instance is small -> weight 10 / size
        w[MASKS[j]] = 10.0 / sizes[j]
    expected = np.sum(w * (seed - target) ** 2) / np.sum(w)
    loss = L.seediness_loss(_t(seed), _t(probs), _t(MASKS), small_instance_area=10.0)
    assert loss.item() == pytest.approx(expected)
    assert loss.item() != pytest.approx(np.mean((seed - target) ** 2))


def test_semantic_loss_with_ignore():
    logits = _t([[2.0, 0.0, 1.0], [0.0, 1.0, 5.0]])  # (C=2, P=3)
    labels = torch.tensor([0, 1, L.IGNORE_INDEX])
    lse = [math.log(math.exp(2) + 1), math.log(1 + math.e)]
    expected = ((lse[0] - 2.0) + (lse[1] - 1.0)) / 2
    assert L.semantic_loss(logits, labels).item() == pytest.approx(expected)


def _toy_clip(n_inst: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    e, t, h, w = 3, 2, 4, 5
    emb = torch.randn(e, t, h, w, generator=g)
    prec = torch.rand(e, t, h, w, generator=g) * 5 + 0.5
    raw = torch.randn(2, t, h, w, generator=g)
    seed_map = torch.rand(t, h, w, generator=g)
    sem = torch.randn(3, t, h, w, generator=g)
    masks = torch.zeros(n_inst, t, h, w, dtype=torch.bool)
    if n_inst:
        masks[0, :, :2, :2] = True
    if n_inst > 1:
        masks[1, :, 2:, 3:] = True
    classes = torch.arange(1, n_inst + 1)
    ignore = torch.zeros(t, h, w, dtype=torch.bool)
    ignore[:, 0, 4] = True
    ignore[1, 3, 0] = True
    return emb, prec, raw, seed_map, masks, ignore, sem, classes


def test_clip_losses_ignore_pixels_do_not_matter():
    emb, prec, raw, seed_map, masks, ignore, sem, classes = _toy_clip()
    a = L.clip_losses(emb, prec, raw, seed_map, masks, ignore, sem, classes)
    emb2, prec2, raw2, seed2, sem2 = (x.clone() for x in (emb, prec, raw, seed_map, sem))
    masks2 = masks.clone()
    for x in (emb2, prec2, raw2, sem2):
        x[:, ignore] = 123.0
    seed2[ignore] = 0.77
    masks2[1][ignore] = True  # an instance label inside the ignore region changes nothing
    b = L.clip_losses(emb2, prec2, raw2, seed2, masks2, ignore, sem2, classes)
    for k in a:
        assert torch.isfinite(a[k]) and a[k].item() == pytest.approx(b[k].item()), k
    # but without the ignore mask the garbage does change the losses
    c = L.clip_losses(emb2, prec2, raw2, seed2, masks2, None, sem2, classes)
    assert c["seediness"].item() != pytest.approx(a["seediness"].item())


def test_clip_losses_match_flat_functions():
    emb, prec, raw, seed_map, masks, ignore, sem, classes = _toy_clip()
    out = L.clip_losses(emb, prec, raw, seed_map, masks, ignore, sem, classes)
    v = ~ignore.reshape(-1)
    m = masks.reshape(2, -1)[:, v]
    probs = L.instance_probabilities(emb.reshape(3, -1)[:, v], prec.reshape(3, -1)[:, v], m)
    assert out["embedding"].item() == pytest.approx(L.embedding_loss(probs, m).item())
    assert out["seediness"].item() == pytest.approx(
        L.seediness_loss(seed_map.reshape(-1)[v], probs, m).item())
    assert out["smoothness"].item() == pytest.approx(
        L.smoothness_loss(raw.reshape(2, -1)[:, v], m).item())
    labels = torch.zeros(ignore.shape, dtype=torch.long)
    labels[masks[0]] = 1
    labels[masks[1]] = 2
    assert out["semantic"].item() == pytest.approx(
        L.semantic_loss(sem.reshape(3, -1)[:, v], labels.reshape(-1)[v]).item())


def test_zero_instance_clip_is_finite():
    emb, prec, raw, seed_map, masks, ignore, sem, classes = _toy_clip(n_inst=0)
    emb.requires_grad_()
    seed_map.requires_grad_()
    out = L.clip_losses(emb, prec, raw, seed_map, masks, ignore, sem, classes)
    assert out["embedding"].item() == 0.0 and out["smoothness"].item() == 0.0
    v = ~ignore
    assert out["seediness"].item() == pytest.approx(seed_map[v].pow(2).mean().item())
    sum(out.values()).backward()
    assert torch.isfinite(seed_map.grad).all()


def test_instance_vanishing_under_ignore_is_dropped():
    emb, prec, raw, seed_map, masks, ignore, sem, classes = _toy_clip(n_inst=1)
    ignore = ignore | masks[0]
    out = L.clip_losses(emb, prec, raw, seed_map, masks, ignore, sem, classes)
    assert all(torch.isfinite(x) for x in out.values())
    assert out["embedding"].item() == 0.0


def test_lovasz_on_many_pixels_fast_and_bounded():
    for n in itertools.islice((10, 1000, 100000), 3):
        logits = torch.randn(n)
        labels = torch.rand(n) > 0.7
        v = L.lovasz_hinge_flat(logits, labels).item()
        assert 0.0 <= v < 10.0


def test_semantic_loss_class_weights_by_hand():
    # two pixels: class 0 with log-softmax -a, class 2 with log-softmax -b; weights w0=1, w2=3
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 2])
    lsm = torch.log_softmax(logits, dim=0)
    a, b = -lsm[0, 0].item(), -lsm[2, 1].item()
    expected = (1.0 * a + 3.0 * b) / (1.0 + 3.0)
    got = L.semantic_loss(logits, labels, [1.0, 1.0, 3.0]).item()
    assert got == pytest.approx(expected)
    assert got != pytest.approx(L.semantic_loss(logits, labels).item())


def _teacher_toy():
    ln3 = math.log(3.0)
    teacher = {"embeddings": torch.zeros(2, 2), "precisions": torch.tensor([[2.0, 2.0],
                                                                             [1.0, 1.0]]),
               "raw_variance": torch.zeros(1, 2), "seediness": torch.tensor([0.5, 0.5]),
               # p(background) 3/4 at pixel 0, 1/4 at pixel 1 -> foreground weights 1/4, 3/4
               "semantic": torch.tensor([[ln3, 0.0], [0.0, ln3]])}
    student = {"embeddings": torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
               "raw_variance": torch.tensor([[1.0, -2.0]]), "seediness": torch.tensor([0.7, 0.1]),
               "semantic": teacher["semantic"].clone()}
    return student, teacher


def test_distill_loss_by_hand():
    student, teacher = _teacher_toy()
    # embedding: shifts 2*1^2 = 2 and 1*2^2 = 4 weighted 1/4, 3/4 -> 3.5; bandwidth: 1 and 4 ->
    # 3.25; seediness: (0.2^2 + 0.4^2) / 2 = 0.1; semantic: same logits -> 0
    assert L.distill_loss(student, teacher).item() == pytest.approx(6.85, rel=1e-6)
    student["semantic"] = torch.zeros(2, 2)  # uniform: KL(3/4, 1/4 || 1/2, 1/2) at each pixel
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert L.distill_loss(student, teacher).item() == pytest.approx(6.85 + kl, rel=1e-6)
    same = {k: v for k, v in teacher.items() if k != "precisions"}
    assert L.distill_loss(same, teacher).item() == 0.0
    # certain background (p = 1) takes the pixel out of the embedding and bandwidth terms
    teacher["semantic"] = torch.tensor([[50.0, 0.0], [0.0, 0.0]])
    student["semantic"] = teacher["semantic"].clone()
    assert L.distill_loss(student, teacher).item() == pytest.approx(4.0 + 4.0 + 0.1, rel=1e-5)


def test_clip_losses_teacher_term_skips_ignored_pixels():
    torch.manual_seed(0)
    e, t, h, w = 3, 2, 4, 5
    out = {"embeddings": torch.randn(e, t, h, w), "precisions": torch.rand(e, t, h, w) + 0.5,
           "raw_variance": torch.randn(e, t, h, w), "seediness": torch.rand(t, h, w),
           "semantic": torch.randn(3, t, h, w)}
    masks = torch.zeros(1, t, h, w, dtype=torch.bool)
    masks[0, :, 1:3, 1:3] = True
    ignore = torch.zeros(t, h, w, dtype=torch.bool)
    ignore[:, :, 4] = True
    teacher = {k: v.clone() for k, v in out.items()}
    for k in ("embeddings", "raw_variance", "seediness", "semantic"):
        teacher[k][..., 4] += 5.0  # differs only where ignored
    args = (out["embeddings"], out["precisions"], out["raw_variance"], out["seediness"], masks,
            ignore, out["semantic"], torch.tensor([1]))
    plain = L.clip_losses(*args)
    taught = L.clip_losses(*args, teacher=teacher)
    assert "distill" not in plain and taught["distill"].item() == 0.0
    assert all(taught[k] == plain[k] for k in plain)
    teacher["seediness"][0, 0, 0] += 0.5
    assert taught["distill"].item() < L.clip_losses(*args, teacher=teacher)["distill"].item()
