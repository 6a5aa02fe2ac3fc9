"""Tuple-output view of the model for tracing/export, and the way back to the dict contract."""
from __future__ import annotations

import torch
from torch import nn

#: Output order of every exported graph.
OUTPUT_NAMES = ("embeddings", "precisions", "seediness", "semantic")


class TupleOutputs(nn.Module):
    """Eval-mode STEmSeg returning a tuple in OUTPUT_NAMES order (semantic only if present)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()
        self.eval()  # a new Module starts in training mode; exporters warn about it
        self.names = tuple(n for n in OUTPUT_NAMES
                           if n != "semantic" or getattr(model, "has_semantic", False))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        return tuple(out[n] for n in self.names)


class DictOutputs(nn.Module):
    """Wraps an exported tuple-output module so it returns the model's output dict again."""

    def __init__(self, module: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.module = module
        self.names = tuple(names)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = self.module(images)
        if isinstance(outs, torch.Tensor):
            outs = (outs,)
        return {n: o.float() for n, o in zip(self.names, outs)}
