"""STEm-Seg network: shapes, ranges, mixing grid, any T, input checks, train losses + gradients for
every mixing function (tiny MobileNet model and a cheap ResNet-101), backbone weights/freezing."""
from __future__ import annotations

import pytest
import torch

from stemseg_core.config import load_config
from stemseg_core.model import STEmSeg, build_model, coordinate_grid, downsample_targets
from stemseg_core.model.backbones.torchvision_fpn import BackboneWeightsError
from stemseg_core.model.mixings.coordinate_letters import PRECISION_SCALE
from stemseg_core.registry import MIXING_FUNCTIONS as MIXING_REGISTRY

CHEAP = ["model.backbone.fpn_channels=32", "model.decoder.widths=[32,32,32,32]",
         "model.decoder.groupnorm_groups=8", "model.clip_length=2", "inference.clip_overlap=1"]


def _cfg(tiny_config, **over):
    from stemseg_core.config import config_from_dict

    d = tiny_config.to_dict()
    for k, v in over.items():
        sec, key = k.split("__")
        d["model"].setdefault(sec, {})[key] = v
    return config_from_dict(d)


def _clip(b=1, t=4, h=64, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, h, w, generator=g) * 255


def _targets(b, t, h, w, n=2):
    out = []
    for _ in range(b):
        masks = torch.zeros(n, t, h, w, dtype=torch.bool)
        if n > 0:
            masks[0, :, 4:28, 8:40] = True
        if n > 1:
            masks[1, :, 32:60, 44:60] = True
        ignore = torch.zeros(t, h, w, dtype=torch.bool)
        ignore[:, :4, :] = True
        out.append({"masks": masks, "classes": torch.arange(1, n + 1), "ignore": ignore})
    return out


def test_eval_outputs_shapes_and_ranges(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config).eval()
    assert isinstance(model, STEmSeg) and model.num_outputs_stride == 4
    assert model.cfg is tiny_config
    with torch.no_grad():
        out = model(_clip(b=2))
    e, c = tiny_config.model.embedding.dims, tiny_config.model.num_classes
    assert set(out) == {"embeddings", "precisions", "seediness", "semantic"}
    assert out["embeddings"].shape == (2, e, 4, 16, 32)
    assert out["precisions"].shape == (2, e, 4, 16, 32)
    assert out["seediness"].shape == (2, 4, 16, 32)
    assert out["semantic"].shape == (2, c, 4, 16, 32)
    assert (out["precisions"] > 0).all()
    assert (out["seediness"] >= 0).all() and (out["seediness"] <= 1).all()
    assert all(torch.isfinite(v).all() for v in out.values())


def test_no_semantic_head(tiny_config):
    cfg = _cfg(tiny_config)
    cfg.model.semantic_head = False
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(_clip(t=2, w=64))
    assert "semantic" not in out
    model.train()
    losses = model(_clip(t=2, w=64), _targets(1, 2, 64, 64))
    assert "semantic" not in losses and torch.isfinite(losses["total"])


@pytest.mark.parametrize("mixing", MIXING_REGISTRY.names())
def test_coordinate_dims_follow_grid_when_offsets_zero(tiny_config, mixing):
    cfg = _cfg(tiny_config, embedding__mixing=mixing)
    model = build_model(cfg).eval()
    conv = model.embedding_head.conv
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        out = model(_clip(t=3, h=64, w=128))
    emb, prec = out["embeddings"][0], out["precisions"][0]
    assert emb.shape[0] == len(mixing)
    # x spans +-max(1, W/H) = +-2, y spans +-1, t spans +-time_scale over the 3 frames
    xs = torch.linspace(-2, 2, 32)
    ys = torch.linspace(-1, 1, 16)
    ts = torch.tensor([-1.0, 0.0, 1.0])
    for d, letter in enumerate(mixing):
        if letter == "x":
            torch.testing.assert_close(emb[d], xs.view(1, 1, 32).expand(3, 16, 32))
        elif letter == "y":
            torch.testing.assert_close(emb[d], ys.view(1, 16, 1).expand(3, 16, 32))
        elif letter == "t":
            torch.testing.assert_close(emb[d], ts.view(3, 1, 1).expand(3, 16, 32))
        else:
            assert emb[d].abs().max() == 0
        want = 1 / 0.3 ** 2 if letter == "f" else PRECISION_SCALE
        torch.testing.assert_close(prec[d], torch.full_like(prec[d], want))


def test_coordinate_grid_portrait_and_single_frame():
    g = coordinate_grid(1, 8, 4, time_scale=2.0)
    assert g.shape == (3, 1, 8, 4)
    assert g[0].min() == -1 and g[0].max() == 1  # x: max(1, W/H) = 1
    assert g[1].min() == -2 and g[1].max() == 2  # y: max(1, H/W) = 2
    assert (g[2] == 0).all()  # T = 1 -> t = 0
    assert coordinate_grid(5, 2, 2, time_scale=2.0)[2, :, 0, 0].tolist() == [-2, -1, 0, 1, 2]


@pytest.mark.parametrize("t", [1, 2, 3, 8, 16])
def test_any_clip_length(tiny_config, t):
    model = build_model(tiny_config).eval()
    with torch.no_grad():
        out = model(_clip(t=t, h=64, w=64))
    assert out["embeddings"].shape[2] == t and out["seediness"].shape == (1, t, 16, 16)


@pytest.mark.parametrize("shape", [(1, 2, 3, 60, 64), (1, 2, 3, 64, 100), (2, 3, 64, 64),
                                   (1, 2, 1, 64, 64)])
def test_bad_input_shape_raises(tiny_config, shape):
    model = build_model(tiny_config).eval()
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(shape))


def test_train_mode_needs_targets(tiny_config):
    model = build_model(tiny_config).train()
    with pytest.raises(ValueError, match="targets"):
        model(_clip(t=2, w=64))


def test_train_losses_weighted_total_and_zero_instances(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config).train()
    targets = _targets(2, 4, 64, 128)
    targets[1] = _targets(1, 4, 64, 128, n=0)[0]  # second clip has no instance
    losses = model(_clip(b=2), targets)
    assert set(losses) == {"embedding", "smoothness", "seediness", "semantic", "total"}
    w = tiny_config.loss
    expected = (w.embedding * losses["embedding"] + w.smoothness * losses["smoothness"]
                + w.seediness * losses["seediness"] + w.semantic * losses["semantic"])
    torch.testing.assert_close(losses["total"], expected)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["embedding"] > 0
    losses["total"].backward()


def test_all_empty_batch_is_finite(tiny_config):
    model = build_model(tiny_config).train()
    losses = model(_clip(t=2, w=64), _targets(1, 2, 64, 64, n=0))
    assert losses["embedding"].item() == 0 and losses["smoothness"].item() == 0
    assert torch.isfinite(losses["total"])
    losses["total"].backward()


def _forward_backward(cfg, h=64, w=64):
    torch.manual_seed(0)
    model = build_model(cfg).train()
    t = cfg.model.clip_length
    losses = model(_clip(t=t, h=h, w=w), _targets(1, t, h, w))
    losses["total"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "a trainable parameter got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    head = model.embedding_head.conv.weight.grad
    assert head.abs().sum() > 0
    return model


@pytest.mark.parametrize("mixing", MIXING_REGISTRY.names())
def test_small_model_trains_every_mixing(tiny_config, mixing):
    cfg = _cfg(tiny_config, embedding__mixing=mixing)
    cfg.model.clip_length = 2
    cfg.inference.clip_overlap = 1
    _forward_backward(cfg)


@pytest.mark.parametrize("mixing", MIXING_REGISTRY.names())
def test_resnet101_trains_every_mixing(mixing):
    cfg = load_config(None, CHEAP + ["model.backbone.name=resnet101",
                                     f"model.embedding.mixing={mixing}"])
    model = _forward_backward(cfg)
    # authors' setting: stem + stage 1 frozen, frozen BN
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("backbone.stages.0.", "backbone.stages.1."))
                          for n in frozen)
    assert model.backbone.stages[2][0].conv1.weight.grad is not None


def test_downsample_targets():
    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, :4, :2] = True  # half of block (0,0)
    masks[0, 0, 4:, :1] = True  # a 1-px-wide sliver: 4/16 = 25% of block (1,0) -> kept
    masks[1, 0, :4, 2:4] = True  # the other half of block (0,0): ties go to the first instance
    masks[1, 0, :3, 4:5] = True  # 3/16 of block (0,1) -> below 25%, dropped
    ignore = torch.zeros(1, 8, 8, dtype=torch.bool)
    ignore[0, 4:, 4:] = True
    small = downsample_targets({"masks": masks, "classes": torch.tensor([1, 2]),
                                "ignore": ignore}, (2, 2))
    assert small["masks"][0, 0].tolist() == [[True, False], [True, False]]
    assert small["masks"][1, 0].tolist() == [[False, False], [False, False]]
    assert small["ignore"][0].tolist() == [[False, False], [False, True]]
    assert not (small["masks"][0] & small["masks"][1]).any()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_backbone_strides_and_bn(name):
    cfg = load_config(None, CHEAP + [f"model.backbone.name={name}",
                                     "model.backbone.frozen_bn=false",
                                     "model.backbone.frozen_stages=0"])
    model = build_model(cfg).eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert all(f.shape[1] == 32 for f in feats)
    assert all(p.requires_grad for p in model.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_backbone_local_weights(tmp_path):
    import torchvision

    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None)
    good = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), good)
    cfg = load_config(None, CHEAP + ["model.backbone.name=resnet18",
                                     f"model.backbone.weights={good}"])
    model = build_model(cfg)
    torch.testing.assert_close(model.backbone.stages[0][0].weight, ref.conv1.weight)
    torch.testing.assert_close(model.backbone.stages[4][1].bn2.running_var, ref.layer4[1].bn2
                               .running_var)
    bad_state = dict(ref.state_dict())
    bad_state.pop("layer2.0.conv1.weight")
    bad_state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(bad_state, bad)
    cfg.model.backbone.weights = str(bad)
    with pytest.raises(BackboneWeightsError, match=r"layer2\.0\.conv1\.weight.*extra\.weight"):
        build_model(cfg)
    cfg.model.backbone.weights = str(tmp_path / "missing.pth")
    with pytest.raises(BackboneWeightsError, match="not found"):
        build_model(cfg)


def test_checkpoint_roundtrip(tiny_checkpoint, tiny_config):
    from stemseg_core.checkpoint import load_checkpoint

    cfg, payload = load_checkpoint(tiny_checkpoint)
    model = build_model(cfg)
    model.load_state_dict(payload["model"], strict=True)
    model.eval()
    torch.manual_seed(0)
    ref = build_model(tiny_config).eval()
    x = _clip(t=4, h=64, w=64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["embeddings"], ref(x)["embeddings"])


def test_frozen_stages_stay_in_eval_mode(tiny_config):
    cfg = load_config(None, CHEAP + ["model.backbone.name=resnet18",
                                     "model.backbone.frozen_bn=false",
                                     "model.backbone.frozen_stages=2"])
    model = build_model(cfg).train()
    assert not model.backbone.stages[2].training and model.backbone.stages[3].training
    assert not any(p.requires_grad for p in model.backbone.stages[2].parameters())
    assert all(p.requires_grad for p in model.backbone.stages[3].parameters())
