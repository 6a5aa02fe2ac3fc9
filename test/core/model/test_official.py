"""The authors' layout (model.architecture: official): the switches that move its outputs, the
squeeze-expand heads, the output transforms, short clips, registries and config checks.

Heads are tested on a small MobileNet backbone (any registered backbone fits the layout); the
MSRA ResNet-FPN switches on the backbone itself. Key layout and shapes of the full networks:
test/core/commands/test_import_official.py.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stemseg_core.config import BackboneConfig, ConfigError, load_config
from stemseg_core.model import build_model
from stemseg_core.model.backbones.msra_resnet_fpn import MsraFPN, MsraResNet, MsraResNetFPN
from stemseg_core.model.squeeze_expand import SqueezeExpandDecoder, temporal_factors
from stemseg_core.registry import ARCHITECTURES, BACKBONES, MIXING_FUNCTIONS, Registry

SMALL = ["model.backbone.name=mobilenet_v3_small", "model.backbone.fpn_channels=32",
         "model.backbone.frozen_bn=false", "model.decoder.widths=[32,32,32,32]",
         "model.decoder.groupnorm_groups=8"]


def small_official(dataset: str = "kitti_mots", extra: list[str] | None = None):
    cfg = load_config(f"config/model/official_{dataset}.yaml", SMALL + (extra or []))
    torch.manual_seed(0)
    return build_model(cfg).eval(), cfg


def test_registries_list_parts_and_reject_unknown_names():
    assert {"msra_resnet101_fpn", "resnet101", "mobilenet_v3_large"} <= set(BACKBONES.names())
    assert {"xyt", "xyff", "tyx", "yxff"} <= set(MIXING_FUNCTIONS.names())
    assert set(ARCHITECTURES.names()) == {"stemseg", "official"}
    with pytest.raises(ConfigError, match="model.backbone.name: unknown backbone 'nope'"):
        BACKBONES.get("nope")
    reg = Registry("thing", "x.thing")
    reg.register("a")(len)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(print)
    with pytest.raises(ConfigError, match="model.architecture: 'paper' is not a registered "
                                          "architecture; allowed: .*official"):
        load_config(None, ["model.architecture=paper"])


@pytest.mark.parametrize("override, message", [
    (["model.foreground_channel=true"], "needs model.architecture: official"),
    (["model.architecture=official", "model.clip_length=6"], "clip lengths"),
    (["input.channel_order=rgba"], "input.channel_order"),
    (["inference.class_vote=mode"], "inference.class_vote"),
    (["inference.min_track_length_per_class={bus: 3}"], "unknown class"),
])
def test_config_checks(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


def test_msra_resnet_switches():
    body = MsraResNet(50)
    assert body.stem.bn1.eps == 0.0 and body.layer3[5].bn2.eps == 0.0
    for layer in (body.layer2, body.layer3, body.layer4):
        assert layer[0].conv1.stride == (2, 2) and layer[0].conv2.stride == (1, 1)
        assert layer[1].conv1.stride == (1, 1)
    assert body.layer1[0].downsample[0].stride == (1, 1)  # projection shortcut, no stride
    assert "layer1.0.downsample.1.running_var" in body.state_dict()
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        feats, stem = body(x)
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 16, 24), (512, 8, 12), (1024, 4, 6),
                                                    (2048, 2, 3)]
    assert stem.shape[-2:] == (32, 48)


def test_frozen_bn_has_no_epsilon():
    body = MsraResNet(50)
    bn = body.stem.bn1
    with torch.no_grad():
        bn.running_var.fill_(1e-4)
        bn.running_mean.zero_()
        bn.weight.fill_(1.0)
        bn.bias.zero_()
    x = torch.ones(1, 64, 2, 2)
    torch.testing.assert_close(bn(x), torch.full_like(x, 100.0))  # 1 / sqrt(1e-4), no eps


def test_fpn_upsamples_bilinearly_and_adds_the_lateral():
    torch.manual_seed(0)
    fpn = MsraFPN([4, 8], 4)
    c2, c3 = torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)
    p2, p3 = fpn([c2, c3])
    top = fpn.fpn_inner2(c3)
    merged = fpn.fpn_inner1(c2) + F.interpolate(top, scale_factor=2, mode="bilinear",
                                                align_corners=False)
    torch.testing.assert_close(p2, fpn.fpn_layer1(merged))
    torch.testing.assert_close(p3, fpn.fpn_layer2(top))
    nearest = MsraFPN([4, 8], 4, upsampling="nearest")
    nearest.load_state_dict(fpn.state_dict())
    assert (nearest([c2, c3])[0] - p2).abs().max() > 1e-3


def test_backbone_freezes_stem_and_layer1():
    net = MsraResNetFPN(BackboneConfig(name="msra_resnet50_fpn", frozen_stages=1,
                                       fpn_channels=32), 50)
    assert not any(p.requires_grad for p in net.body.layer1.parameters())
    assert all(p.requires_grad for p in net.body.layer2.parameters())
    assert sorted(k for k in net.state_dict() if k.startswith("fpn.")) == sorted(
        f"fpn.fpn_{kind}{i}.{p}" for kind in ("inner", "layer") for i in range(1, 5)
        for p in ("weight", "bias"))


@pytest.mark.parametrize("t, factors", [(2, (1, 1, 1)), (4, (1, 1, 2)), (8, (1, 2, 2)),
                                        (16, (2, 2, 2)), (24, (2, 2, 2))])
def test_temporal_factors_follow_the_pool_slots(t, factors):
    assert temporal_factors(t) == factors
    dec = SqueezeExpandDecoder(8, [8, 8, 8, 8], 4, t)
    pools = [isinstance(m, torch.nn.AvgPool3d) for m in dec.block_32x[3::4]]
    assert pools == [i < {2: 0, 4: 1, 8: 2}.get(t, 3) for i in range(3)]
    assert all(m.count_include_pad for m in dec.modules() if isinstance(m, torch.nn.AvgPool3d))
    vols = [torch.randn(1, 8, t, 3 * s, 3 * s) for s in (1, 2, 4, 8)]
    assert dec.decode(vols).shape == (1, 8, t, 24, 24)


def test_pooling_counts_zero_padding():
    dec = SqueezeExpandDecoder(4, [4, 4, 4, 4], 2, 8)
    pool = dec.block_32x[3]
    x = torch.ones(1, 1, 8, 3, 3)
    y = pool(x)
    # the corner of the first output frame averages 2x2x2 ones with 19 zeros of padding
    assert y.shape == (1, 1, 4, 3, 3) and y[0, 0, 0, 0, 0].item() == pytest.approx(8 / 27)


def test_outputs_grid_order_precisions_and_channels():
    model, cfg = small_official()
    head = model.embedding_head
    with torch.no_grad():
        head.conv_embedding.weight.zero_()
        head.conv_variance.weight.zero_()
        head.conv_variance.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        head.time_scale.fill_(0.5)
    with torch.inference_mode():
        out = model(torch.rand(1, 8, 3, 96, 160) * 255)
    assert set(out) == {"embeddings", "precisions", "seediness", "semantic", "foreground"}
    emb = out["embeddings"][0]  # (3, 8, 24, 40): t, y, x
    torch.testing.assert_close(emb[0, :, 0, 0], torch.linspace(-0.5, 0.5, 8))
    torch.testing.assert_close(emb[1, 0, :, 0], torch.linspace(-1, 1, 24))
    torch.testing.assert_close(emb[2, 0, 0, :], torch.linspace(-40 / 24, 40 / 24, 40))
    prec = out["precisions"][0]
    for d, b in enumerate([0.0, 1.0, -1.0]):
        torch.testing.assert_close(prec[d], torch.full_like(prec[d], 10 * float(torch.tensor(b)
                                                                              .exp())))
    assert out["semantic"].shape == (1, 3, 8, 24, 40)  # class logits; the 4th channel is fg
    assert 0 <= out["foreground"].min() and out["foreground"].max() <= 1


def test_free_dims_use_the_bandwidth_buffer_and_seediness_head():
    model, _ = small_official("davis", ["model.clip_length=8"])
    assert model.seediness_head is not None and model.embedding_head.conv_seediness is None
    with torch.no_grad():
        model.mixing.free_dim_bandwidths.copy_(torch.tensor([[2.0, 3.0]]))
        model.embedding_head.conv_embedding.weight.zero_()
    with torch.inference_mode():
        out = model(torch.rand(1, 8, 3, 96, 96) * 255)
    assert "semantic" not in out and out["seediness"].shape == (1, 8, 24, 24)
    assert (out["precisions"][0, 2] == 2.0).all() and (out["precisions"][0, 3] == 3.0).all()
    emb = out["embeddings"][0]  # y, x, f, f: the grid in y, x; free dims offsets only
    torch.testing.assert_close(emb[0, 0, :, 0], torch.linspace(-1, 1, 24))
    torch.testing.assert_close(emb[1, 0, 0, :], torch.linspace(-1, 1, 24))
    assert (emb[2:] == 0).all()


def test_short_clip_is_front_padded_with_its_first_frame():
    model, _ = small_official()
    torch.manual_seed(1)
    clip = torch.rand(1, 5, 3, 96, 96) * 255
    padded = torch.cat([clip[:, :1]] * 3 + [clip], dim=1)
    with torch.inference_mode():
        short, full = model(clip), model(padded)
    for k, v in short.items():
        assert v.shape[2 if v.dim() == 5 else 1] == 5
        ref = full[k][:, :, 3:] if v.dim() == 5 else full[k][:, 3:]
        torch.testing.assert_close(v, ref)
    with torch.inference_mode():  # per-frame encoder + per-clip decoder = forward
        feats = model.encode_frames(clip[0])
        torch.testing.assert_close(model.decode_clip(*feats)["seediness"], short["seediness"])
        two = model(torch.cat([clip, clip]))
    torch.testing.assert_close(two["embeddings"][1:], short["embeddings"])
    with pytest.raises(ValueError, match="longer than model.clip_length=8"):
        model(torch.rand(1, 9, 3, 96, 96))
    with pytest.raises(ValueError, match="H and W >= 96"):
        model(torch.rand(1, 8, 3, 64, 96))


def test_official_is_inference_only():
    model, _ = small_official()
    with pytest.raises(ValueError, match="for inference"):
        model.train()(torch.rand(1, 8, 3, 96, 96), [])
