"""Per-frame 2D backbone (torchvision ResNet / MobileNetV3) + FPN with outputs at strides 4..32.

Weights are never downloaded: `cfg.weights` may name a local torchvision classification
state_dict (e.g. ``resnet101-63fe2227.pth`` copied onto the machine), loaded with strict key
checks.

Registered here (registry.BACKBONES): the torchvision ResNets and MobileNetV3s + FPN, under
their torchvision names.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.misc import FrozenBatchNorm2d

from stemseg_core.config import BackboneConfig
from stemseg_core.registry import BACKBONES

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
MOBILENETS = ("mobilenet_v3_large", "mobilenet_v3_small")
#: Keys of the torchvision classifier that the trunk does not use (allowed to be absent).
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")


class BackboneWeightsError(ValueError):
    """The local backbone weights file is missing, unreadable or does not match the backbone."""


def _load_weights(net: nn.Module, path: str, name: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise BackboneWeightsError(
            f"model.backbone.weights: file not found: {p} (weights are never downloaded; copy a "
            f"torchvision '{name}' state_dict there or set model.backbone.weights=null)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # many exception types for garbage files
        raise BackboneWeightsError(f"model.backbone.weights: cannot read {p}: "
                                   f"{type(e).__name__}: {e}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"model.backbone.weights: {p} does not hold a state_dict")
    own = net.state_dict()
    missing = sorted(k for k in own if k not in state and not k.startswith(_CLASSIFIER_PREFIXES)
                     and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own and not k.endswith("num_batches_tracked"))
    mismatched = sorted(k for k in state if k in own and not k.startswith(_CLASSIFIER_PREFIXES)
                        and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or mismatched:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")
        raise BackboneWeightsError(
            f"model.backbone.weights: {p} does not match torchvision '{name}': "
            f"missing keys [{show(missing)}]; unexpected keys [{show(unexpected)}]; "
            f"shape mismatch [{show(mismatched)}]")
    state = {k: v for k, v in state.items()
             if k in own and not k.startswith(_CLASSIFIER_PREFIXES)}
    net.load_state_dict(state, strict=False)


class Backbone(nn.Module):
    """Images (N, 3, H, W), already normalised -> 4 FPN maps at strides 4, 8, 16, 32.

    ``stages`` holds 5 sequential groups: stem (stride 2) and stages 1..4 (strides 4..32); the
    outputs of stages 1..4 feed the FPN.
    """

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        name = cfg.name
        if cfg.frozen_bn:
            norm: type[nn.Module] | partial = FrozenBatchNorm2d
        else:
            norm = nn.BatchNorm2d
        if name in RESNETS:
            net = getattr(torchvision.models, name)(weights=None, norm_layer=norm)
            if cfg.weights:
                _load_weights(net, cfg.weights, name)
            groups = [
                nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
                net.layer1, net.layer2, net.layer3, net.layer4,
            ]
            # the stem here already ends at stride 4 (maxpool): stage 1 keeps stride 4
            in_channels = [_last_channels(g) for g in groups[1:]]
            stem_channels = int(net.conv1.out_channels)
            self._stem_split = 3  # conv1, bn1, relu (stride 2) | maxpool (stride 4)
        elif name in MOBILENETS:
            if cfg.frozen_bn:
                norm = partial(FrozenBatchNorm2d, eps=0.001)
            else:
                norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
            net = getattr(torchvision.models, name)(weights=None, norm_layer=norm)
            if cfg.weights:
                _load_weights(net, cfg.weights, name)
            # cumulative stride per feature layer: the first conv and each "_is_cn" block halve
            buckets: list[list[nn.Module]] = [[] for _ in range(5)]
            stride = 1
            for i, block in enumerate(net.features):
                if i == 0 or getattr(block, "_is_cn", False):
                    stride *= 2
                level = min(max(stride.bit_length() - 2, 0), 4)  # 2->0, 4->1, ..., 32->4
                buckets[level].append(block)
            if any(not b for b in buckets):
                raise RuntimeError(f"{name}: could not find feature layers at strides 2..32")
            groups = [nn.Sequential(*b) for b in buckets]
            in_channels = [int(b[-1].out_channels) for b in buckets[1:]]
            stem_channels = int(buckets[0][-1].out_channels)
            self._stem_split = len(buckets[0])  # the whole stem group is at stride 2
        else:
            raise ValueError(f"unsupported backbone '{name}'; allowed: {RESNETS + MOBILENETS}")
        self.stages = nn.ModuleList(groups)
        self.in_channels = in_channels
        #: Channels of the stride-2 stem features (``forward(x, with_stem=True)``).
        self.stem_channels = stem_channels
        self.out_channels = cfg.fpn_channels
        self.fpn = FeaturePyramidNetwork(in_channels, cfg.fpn_channels)
        self.frozen_stages = min(cfg.frozen_stages, 4)
        # frozen_stages=k freezes the stem and stages 1..k
        n_frozen = self.frozen_stages + 1 if self.frozen_stages > 0 else 0
        self._frozen = list(range(n_frozen))
        for i in self._frozen:
            for prm in self.stages[i].parameters():
                prm.requires_grad_(False)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for i in self._frozen:  # frozen stages keep their BatchNorm statistics
            self.stages[i].eval()
        return self

    def forward(self, x: torch.Tensor, with_stem: bool = False):
        """(N, 3, H, W) -> [FPN maps at strides 4, 8, 16, 32]; with_stem: also the stem's
        stride-2 features (N, stem_channels, H/2, W/2), as (maps, stem)."""
        feats: OrderedDict[str, torch.Tensor] = OrderedDict()
        stem_group = self.stages[0]
        stem = stem_group[:self._stem_split](x)
        x = stem_group[self._stem_split:](stem)
        for i in range(1, 5):
            x = self.stages[i](x)
            feats[str(i)] = x
        out = self.fpn(feats)
        maps = [out[str(i)] for i in range(1, 5)]
        return (maps, stem) if with_stem else maps


def _last_channels(module: nn.Module) -> int:
    """Output channels of a ResNet layer (last conv's out_channels)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    last_block = list(module.children())[-1]
    # BasicBlock: conv2; Bottleneck: conv3 (downsample convs come earlier in modules())
    for attr in ("conv3", "conv2"):
        if hasattr(last_block, attr):
            return int(getattr(last_block, attr).out_channels)
    return int(convs[-1].out_channels)


def build_torchvision_backbone(cfg: BackboneConfig) -> Backbone:
    return Backbone(cfg)


for _name in RESNETS + MOBILENETS:
    BACKBONES.register(_name)(build_torchvision_backbone)
