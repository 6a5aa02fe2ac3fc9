"""STEm-Seg networks: :func:`build_model` (cfg -> the network of ``cfg.model.architecture``:
:class:`STEmSeg`, or the authors' layout in architectures/official.py) and their parts.

Parts are found by name in registries (stemseg_core/registry.py): a backbone is one file in
backbones/, a mixing function one in mixings/, a whole-network layout one in architectures/."""
from __future__ import annotations

from stemseg_core.model.backbones.torchvision_fpn import Backbone, BackboneWeightsError
from stemseg_core.model.mixings.coordinate_letters import Mixing, coordinate_grid
from stemseg_core.model.stemseg import STEmSeg, build_model, downsample_targets
from stemseg_core.model.tse_decoder import TSEDecoder
from stemseg_core.registry import ARCHITECTURES, BACKBONES, MIXING_FUNCTIONS

__all__ = ["ARCHITECTURES", "BACKBONES", "MIXING_FUNCTIONS", "Backbone", "BackboneWeightsError",
           "Mixing", "STEmSeg", "TSEDecoder", "build_model", "coordinate_grid",
           "downsample_targets"]
