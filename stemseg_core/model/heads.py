"""Output heads on top of the TSE decoders: 1x1x1 convolutions.

- :class:`EmbeddingHead` (decoder 1): raw embedding offsets (E channels) and raw log-precisions for
  the non-free dims (V channels); :class:`~stemseg_core.model.mixings.coordinate_letters.Mixing`
  turns them into embeddings and precisions.
- :class:`SeedinessHead` (decoder 2): sigmoid heat map in [0, 1].
- :class:`SemanticHead` (decoder 3, optional): class logits, background = class 0.
"""
from __future__ import annotations

import torch
from torch import nn

from stemseg_core.model.tse_decoder import Conv3d


class EmbeddingHead(nn.Module):
    def __init__(self, in_channels: int, embedding_dims: int, variance_dims: int):
        super().__init__()
        self.embedding_dims = embedding_dims
        self.variance_dims = variance_dims
        self.conv = Conv3d(in_channels, embedding_dims + variance_dims, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (raw_embedding (B, E, T, h, w), raw_variance (B, V, T, h, w))."""
        y = self.conv(x)
        return y[:, :self.embedding_dims], y[:, self.embedding_dims:]


class SeedinessHead(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = Conv3d(in_channels, 1, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.constant_(self.conv.bias, -2.0)  # start low: most pixels are background

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """-> seediness (B, T, h, w) in [0, 1]."""
        return torch.sigmoid(self.conv(x)[:, 0])


class SemanticHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv = Conv3d(in_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """-> logits (B, C, T, h, w)."""
        return self.conv(x)
