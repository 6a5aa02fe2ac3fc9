"""Our STEm-Seg layout (model/stemseg.py): separate TSE decoders per output, trainable."""
from __future__ import annotations

from stemseg_core.config import Config
from stemseg_core.model.stemseg import STEmSeg
from stemseg_core.registry import ARCHITECTURES


@ARCHITECTURES.register("stemseg")
def build_stemseg(cfg: Config) -> STEmSeg:
    return STEmSeg(cfg)
