"""The mixing functions named by their letters (mixing.py): the paper's six, and the authors'
dim orders for their released models (their "xyt" = ``tyx``, their "xyff" = ``yxff``)."""
from __future__ import annotations

from stemseg_core.config import EmbeddingConfig
from stemseg_core.model.mixing import Mixing
from stemseg_core.registry import MIXING_FUNCTIONS

LETTER_MIXINGS = ("xy", "xyt", "xyf", "xytf", "xyff", "xyfff", "tyx", "yxff")


def _register(name: str) -> None:
    @MIXING_FUNCTIONS.register(name)
    def build(cfg: EmbeddingConfig, free_precision_buffer: bool = False) -> Mixing:
        return Mixing(name, cfg.free_dim_std, cfg.time_scale,
                      free_precision_buffer=free_precision_buffer)


for _name in LETTER_MIXINGS:
    _register(_name)
