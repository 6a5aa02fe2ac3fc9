"""MSRA-style ResNet + FPN as in maskrcnn-benchmark's R-50/101-FPN, the authors' backbone.

It is torchvision's ResNet with three switches, and an FPN with one:

- frozen BatchNorm with epsilon 0 (scale = weight / sqrt(running_var));
- the stride of a stage's first block in its first 1x1 convolution (Caffe2 ``STRIDE_IN_1X1``),
  not in the 3x3; the projection shortcut of the first block (layer1's included) is unchanged;
- the FPN's top-down path upsamples the coarser merged map x2 **bilinearly** (align_corners
  False) before adding the lateral 1x1 map; 3x3 output convs, no P6, no norm, no ReLU.

State-dict keys are the authors' (``body.stem.conv1``, ``body.layer1.0.downsample.0``,
``fpn.fpn_inner1``, ``fpn.fpn_layer1``, ...), so their checkpoints load without renaming.
Input: (N, 3, H, W) normalised BGR images (mean subtracted, std 1); output: P2..P5
(strides 4..32, ``fpn_channels`` each).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from stemseg_core.config import BackboneConfig
from stemseg_core.model.backbones.torchvision_fpn import BackboneWeightsError
from stemseg_core.registry import BACKBONES

#: maskrcnn-benchmark's frozen BatchNorm has no epsilon (detectron2 and torchvision use 1e-5).
FROZEN_BN_EPS = 0.0
FPN_UPSAMPLING = ("bilinear", "nearest")


class Stem(nn.Module):
    """7x7 stride-2 conv -> frozen BN -> ReLU (stride 2) -> 3x3 stride-2 max-pool (stride 4)."""

    def __init__(self, conv1: nn.Module, bn1: nn.Module):
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (stride-2 features after the ReLU, stride-4 features after the max-pool)."""
        s2 = F.relu_(self.bn1(self.conv1(x)))
        return s2, F.max_pool2d(s2, kernel_size=3, stride=2, padding=1)


class MsraResNet(nn.Module):
    """ResNet body with ``stem`` and ``layer1..4`` (outputs C2..C5)."""

    def __init__(self, depth: int, frozen_bn: bool = True, stride_in_1x1: bool = True):
        super().__init__()
        norm = partial(FrozenBatchNorm2d, eps=FROZEN_BN_EPS) if frozen_bn else nn.BatchNorm2d
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None, norm_layer=norm)
        if stride_in_1x1:
            for layer in (net.layer2, net.layer3, net.layer4):
                first = layer[0]
                first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)
        self.stem = Stem(net.conv1, net.bn1)
        self.layer1, self.layer2, self.layer3, self.layer4 = (net.layer1, net.layer2, net.layer3,
                                                              net.layer4)
        self.out_channels = [256, 512, 1024, 2048]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(N, 3, H, W) -> ([C2, C3, C4, C5], stride-2 stem features)."""
        s2, x = self.stem(x)
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats, s2


class MsraFPN(nn.Module):
    """Lateral 1x1 convs ``fpn_inner1..4`` and output 3x3 convs ``fpn_layer1..4`` (with bias)."""

    def __init__(self, in_channels: list[int], out_channels: int, upsampling: str = "bilinear"):
        super().__init__()
        if upsampling not in FPN_UPSAMPLING:
            raise ValueError(f"FPN upsampling '{upsampling}' not one of {FPN_UPSAMPLING}")
        self.upsampling = upsampling
        self.n_levels = len(in_channels)
        for i, c in enumerate(in_channels, 1):
            inner = nn.Conv2d(c, out_channels, 1)
            layer = nn.Conv2d(out_channels, out_channels, 3, padding=1)
            for conv in (inner, layer):
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.zeros_(conv.bias)
            self.add_module(f"fpn_inner{i}", inner)
            self.add_module(f"fpn_layer{i}", layer)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[C2..C5] -> [P2..P5], finest first."""
        last = getattr(self, f"fpn_inner{self.n_levels}")(feats[-1])
        out = [getattr(self, f"fpn_layer{self.n_levels}")(last)]
        for i in range(self.n_levels - 1, 0, -1):
            if self.upsampling == "bilinear":
                top_down = F.interpolate(last, scale_factor=2, mode="bilinear",
                                         align_corners=False)
            else:
                top_down = F.interpolate(last, scale_factor=2, mode="nearest")
            last = getattr(self, f"fpn_inner{i}")(feats[i - 1]) + top_down
            out.insert(0, getattr(self, f"fpn_layer{i}")(last))
        return out


class MsraResNetFPN(nn.Module):
    """``body`` (MsraResNet) + ``fpn`` (MsraFPN); the Backbone contract of torchvision_fpn.py."""

    def __init__(self, cfg: BackboneConfig, depth: int):
        super().__init__()
        self.body = MsraResNet(depth, frozen_bn=cfg.frozen_bn)
        self.fpn = MsraFPN(self.body.out_channels, cfg.fpn_channels)
        self.out_channels = cfg.fpn_channels
        self.stem_channels = 64
        stages = [self.body.stem, self.body.layer1, self.body.layer2, self.body.layer3,
                  self.body.layer4]
        n_frozen = min(cfg.frozen_stages, 4) + 1 if cfg.frozen_stages > 0 else 0
        self._frozen = stages[:n_frozen]
        for module in self._frozen:
            for prm in module.parameters():
                prm.requires_grad_(False)
        if cfg.weights:
            _load_backbone_weights(self, cfg.weights)

    def train(self, mode: bool = True) -> MsraResNetFPN:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def forward(self, x: torch.Tensor, with_stem: bool = False):
        """(N, 3, H, W) -> [P2, P3, P4, P5]; with_stem: also the stride-2 stem features."""
        feats, s2 = self.body(x)
        maps = self.fpn(feats)
        return (maps, s2) if with_stem else maps


def _load_backbone_weights(net: nn.Module, path: str) -> None:
    """The authors' backbone file (``mask_rcnn_R_101_FPN_backbone.pth``: keys body.*, fpn.*)."""
    p = Path(path)
    if not p.is_file():
        raise BackboneWeightsError(f"model.backbone.weights: file not found: {p} (weights are "
                                   f"never downloaded; copy the file there or set it to null)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # many exception types for garbage files
        raise BackboneWeightsError(f"model.backbone.weights: cannot read {p}: "
                                   f"{type(e).__name__}: {e}") from None
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"model.backbone.weights: {p} does not hold a state_dict")
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise BackboneWeightsError(
            f"model.backbone.weights: {p} does not match an MSRA ResNet-FPN: missing "
            f"{missing[:6]} ({len(missing)}), unexpected {unexpected[:6]} ({len(unexpected)})")
    net.load_state_dict(state, strict=True)


@BACKBONES.register("msra_resnet50_fpn")
def build_msra_resnet50_fpn(cfg: BackboneConfig) -> MsraResNetFPN:
    return MsraResNetFPN(cfg, 50)


@BACKBONES.register("msra_resnet101_fpn")
def build_msra_resnet101_fpn(cfg: BackboneConfig) -> MsraResNetFPN:
    return MsraResNetFPN(cfg, 101)
