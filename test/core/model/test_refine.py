"""Stride-2 refinement (model.output_stride: 2): shapes, identity at init (a stride-4 model's
weights give its own outputs upsampled), training at 1/2 resolution, backbone stem features, and
the config check."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stemseg_core.config import ConfigError, config_from_dict
from stemseg_core.model import build_model, downsample_targets
from stemseg_core.model.backbones.torchvision_fpn import Backbone
from stemseg_core.model.refine import StrideTwoRefiner


def _with_stride(cfg, stride: int):
    d = cfg.to_dict()
    d["model"]["output_stride"] = stride
    return config_from_dict(d)


def _clip(t=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, t, 3, h, w, generator=g) * 255


def test_refiner_starts_as_bilinear_upsampling_then_learns():
    torch.manual_seed(0)
    ref = StrideTwoRefiner(channels=8, stem_channels=5, groups=4)
    x = torch.randn(2, 8, 3, 4, 6)
    stem = torch.randn(6, 5, 8, 12)
    y = ref(x, stem)
    assert y.shape == (2, 8, 3, 8, 12)
    # Frame 1 of clip 1, upsampled alone, equals the refiner's output at init.
    want = F.interpolate(x[1, :, 1][None], scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[1, :, 1], want[0])
    # The zero-initialised output conv still receives a gradient, so the guide is learned.
    y.square().sum().backward()
    assert ref.out.weight.grad is not None and ref.out.weight.grad.abs().sum() > 0


def test_refiner_rejects_stem_of_the_wrong_size():
    ref = StrideTwoRefiner(channels=8, stem_channels=5, groups=4)
    with pytest.raises(ValueError, match=r"\(B\*T, S, 2h, 2w\) = \(3, S, 8, 12\)"):
        ref(torch.randn(1, 8, 3, 4, 6), torch.randn(3, 5, 4, 6))


@pytest.mark.parametrize("name,stem_channels", [("mobilenet_v3_large", 16), ("resnet18", 64)])
def test_backbone_stem_features_are_at_stride_two(tiny_config, name, stem_channels):
    cfg = tiny_config.model.backbone
    cfg.name = name
    net = Backbone(cfg).eval()
    with torch.no_grad():
        maps, stem = net(torch.randn(2, 3, 64, 96), with_stem=True)
        plain = net(torch.randn(2, 3, 64, 96))
    assert net.stem_channels == stem_channels
    assert stem.shape == (2, stem_channels, 32, 48)
    assert [m.shape[-2:] for m in maps] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert len(plain) == 4


def test_stride_two_model_from_stride_four_weights_gives_the_upsampled_outputs(tiny_config):
    torch.manual_seed(0)
    m4 = build_model(tiny_config).eval()
    m2 = build_model(_with_stride(tiny_config, 2)).eval()
    missing, unexpected = m2.load_state_dict(m4.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refiners.") for k in missing)
    assert m2.num_outputs_stride == 2
    clip = _clip()
    with torch.no_grad():
        o4, o2 = m4(clip), m2(clip)
    assert o2["embeddings"].shape[-2:] == (32, 48) and o4["embeddings"].shape[-2:] == (16, 24)
    assert o2["seediness"].shape == (1, 2, 32, 48)

    def up(v):  # (B, C, T, h, w) -> bilinear x2 per frame
        b, c, t, h, w = v.shape
        return F.interpolate(v.reshape(b, c * t, h, w), scale_factor=2, mode="bilinear",
                             align_corners=False).reshape(b, c, t, 2 * h, 2 * w)

    # Heads are 1x1 convolutions, so they commute with the upsampling: logits match exactly.
    torch.testing.assert_close(o2["semantic"], up(o4["semantic"]), atol=1e-5, rtol=1e-4)
    # Embeddings differ only by the finer coordinate grid (at most half a 1/4-res pixel step).
    step = 2 * max(1.0, 96 / 64) / (24 - 1)
    assert (o2["embeddings"] - up(o4["embeddings"])).abs().max() < 0.5 * step + 1e-3


def test_stride_two_losses_use_half_resolution_targets(tiny_config):
    torch.manual_seed(0)
    model = build_model(_with_stride(tiny_config, 2)).train()
    masks = torch.zeros(1, 2, 64, 96, dtype=torch.bool)
    masks[0, :, 10:12, 20:60] = True  # 2 px tall: one row at 1/2, half a block (kept) at 1/4
    target = {"masks": masks, "classes": torch.tensor([2]),
              "ignore": torch.zeros(2, 64, 96, dtype=torch.bool)}
    small = downsample_targets(target, (32, 48), stride=2)
    assert small["masks"].shape == (1, 2, 32, 48)
    assert int(small["masks"][0, 0].sum()) == 20  # row 5, columns 10..29
    losses = model(_clip(), [target])
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    grads = [p.grad for p in model.refiners.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_output_stride_is_validated(tiny_config):
    with pytest.raises(ConfigError, match=r"model.output_stride must be one of \(4, 2\).*got 8"):
        _with_stride(tiny_config, 8)
