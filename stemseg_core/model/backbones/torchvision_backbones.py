"""torchvision ResNets and MobileNetV3s + FPN (backbone.py), under their torchvision names."""
from __future__ import annotations

from stemseg_core.config import BackboneConfig
from stemseg_core.model.backbone import MOBILENETS, RESNETS, Backbone
from stemseg_core.registry import BACKBONES


def build_torchvision_backbone(cfg: BackboneConfig) -> Backbone:
    return Backbone(cfg)


for _name in RESNETS + MOBILENETS:
    BACKBONES.register(_name)(build_torchvision_backbone)
