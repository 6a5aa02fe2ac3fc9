"""STEm-Seg network: :func:`build_model` (cfg -> :class:`STEmSeg`) and its parts."""
from __future__ import annotations

from stemseg_core.model.backbone import Backbone, BackboneWeightsError
from stemseg_core.model.mixing import Mixing, coordinate_grid
from stemseg_core.model.stemseg import STEmSeg, build_model, downsample_targets
from stemseg_core.model.tse_decoder import TSEDecoder

__all__ = ["Backbone", "BackboneWeightsError", "Mixing", "STEmSeg", "TSEDecoder", "build_model",
           "coordinate_grid", "downsample_targets"]
