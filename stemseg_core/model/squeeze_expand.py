"""The authors' squeeze-expand decoder and its heads (``model.architecture: official``).

Same idea as tse_decoder.py, in the authors' exact layout (their ``squeeze_expand_decoder``):

- per scale, blocks of Conv3d 3x3x3 (bias) -> GroupNorm -> ReLU -> pool slot: 3 at 1/32, 2 at
  1/16, 1 at 1/8, and one conv block without pool slot at 1/4 (Sequential indices 0, 1, 4, 5, 8, 9
  hold the convs and norms, as in their checkpoints);
- pool slot k (1, 2, 3) is ``AvgPool3d(3, stride (2, 1, 1), padding 1)``, which counts the zero
  padding (``count_include_pad=True``), where k <= the slots pooled for the clip length
  (:data:`POOLED_SLOTS`), else the identity;
- up path coarse -> fine: trilinear upsampling (align_corners False) by (f, 2, 2) with the
  temporal factor f that undoes the pooling difference, concat [upsampled, lateral], 1x1x1 conv
  without bias (``conv_16``, ``conv_8``, ``conv_4``), no norm and no activation.

Heads add 1x1x1 output convs on the 1/4 map. Input: 4 volumes (B, C, T, h, w), coarsest first
(1/32, 1/16, 1/8, 1/4); T must be the clip length the head was built for.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stemseg_core.config.schema import POOLED_SLOTS
from stemseg_core.model.tse_decoder import Conv3d

#: Convolution blocks at 1/32, 1/16, 1/8 (each followed by a pool slot); 1/4 has one, unpooled.
BLOCKS = (3, 2, 1)


def _pooled_length(t: int, n_pools: int) -> int:
    for _ in range(n_pools):
        t = (t - 1) // 2 + 1  # AvgPool3d(k=3, stride 2, pad 1) along time
    return t


def temporal_factors(clip_length: int) -> tuple[int, int, int]:
    """Temporal upsampling factors 1/32->1/16, 1/16->1/8, 1/8->1/4 (T=8: (1, 2, 2))."""
    slots = check_clip_length(clip_length)
    lengths = [_pooled_length(clip_length, min(n, slots)) for n in (*BLOCKS, 0)]
    return tuple(lengths[i + 1] // lengths[i] for i in range(3))  # type: ignore[return-value]


def check_clip_length(clip_length: int) -> int:
    """Number of pooled slots for a clip length; ValueError for lengths the layout lacks."""
    if clip_length not in POOLED_SLOTS:
        raise ValueError(f"model.clip_length {clip_length}: the authors' decoder is defined for "
                         f"clip lengths {sorted(POOLED_SLOTS)} only")
    return POOLED_SLOTS[clip_length]


class SqueezeExpandDecoder(nn.Module):
    """(volumes coarsest first) -> (B, widths[3], T, H/4, W/4). widths: at 1/32, 1/16, 1/8, 1/4."""

    def __init__(self, in_channels: int, widths: list[int], groups: int, clip_length: int):
        super().__init__()
        slots = check_clip_length(clip_length)
        self.clip_length = clip_length

        def block(n_convs: int, out_ch: int, pool: bool) -> nn.Sequential:
            layers: list[nn.Module] = []
            for i in range(n_convs):
                layers += [Conv3d(in_channels if i == 0 else out_ch, out_ch, 3, padding=1),
                           nn.GroupNorm(groups, out_ch), nn.ReLU(inplace=True)]
                if pool:
                    layers.append(nn.AvgPool3d(3, stride=(2, 1, 1), padding=1,
                                               count_include_pad=True) if i < slots
                                  else nn.Identity())
            return nn.Sequential(*layers)

        self.block_32x = block(BLOCKS[0], widths[0], True)
        self.block_16x = block(BLOCKS[1], widths[1], True)
        self.block_8x = block(BLOCKS[2], widths[2], True)
        self.block_4x = block(1, widths[3], False)
        self.conv_16 = Conv3d(widths[0] + widths[1], widths[1], 1, bias=False)
        self.conv_8 = Conv3d(widths[1] + widths[2], widths[2], 1, bias=False)
        self.conv_4 = Conv3d(widths[2] + widths[3], widths[3], 1, bias=False)
        self.factors = temporal_factors(clip_length)
        self.out_channels = widths[3]

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        if len(feats) != 4 or feats[0].shape[2] != self.clip_length:
            raise ValueError(f"expected 4 volumes (B, C, T={self.clip_length}, h, w), coarsest "
                             f"first; got {[tuple(f.shape) for f in feats]}")
        x = self.block_32x(feats[0])
        for f, block, conv, feat in zip(self.factors, (self.block_16x, self.block_8x,
                                                       self.block_4x),
                                        (self.conv_16, self.conv_8, self.conv_4), feats[1:]):
            x = F.interpolate(x, scale_factor=(f, 2, 2), mode="trilinear", align_corners=False)
            x = conv(torch.cat([x, block(feat)], dim=1))
        return x


class OfficialEmbeddingHead(SqueezeExpandDecoder):
    """-> raw embedding (B, E, T, h, w), raw variance (B, V, T, h, w), seediness (B, T, h, w) in
    [0, 1] or None. ``time_scale`` (0-d buffer) is the span of the t coordinate."""

    def __init__(self, in_channels: int, widths: list[int], groups: int, clip_length: int,
                 embedding_dims: int, variance_dims: int, seediness: bool):
        super().__init__(in_channels, widths, groups, clip_length)
        self.conv_embedding = Conv3d(widths[3], embedding_dims, 1, bias=False)
        self.conv_variance = Conv3d(widths[3], variance_dims, 1, bias=True)
        self.conv_seediness = Conv3d(widths[3], 1, 1, bias=False) if seediness else None
        self.register_buffer("time_scale", torch.tensor(1.0, dtype=torch.float32))

    def forward(self, feats: list[torch.Tensor]):
        x = self.decode(feats)
        seediness = (torch.sigmoid(self.conv_seediness(x)[:, 0])
                     if self.conv_seediness is not None else None)
        return self.conv_embedding(x), self.conv_variance(x), seediness


class OfficialSeedinessHead(SqueezeExpandDecoder):
    """-> seediness (B, T, h, w) in [0, 1]."""

    def __init__(self, in_channels: int, widths: list[int], groups: int, clip_length: int):
        super().__init__(in_channels, widths, groups, clip_length)
        self.conv_out = Conv3d(widths[3], 1, 1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(self.conv_out(self.decode(feats))[:, 0])


class OfficialSemsegHead(SqueezeExpandDecoder):
    """-> logits (B, C (+1 foreground channel, last), T, h, w)."""

    def __init__(self, in_channels: int, widths: list[int], groups: int, clip_length: int,
                 num_classes: int, foreground_channel: bool = True):
        super().__init__(in_channels, widths, groups, clip_length)
        self.foreground_channel = foreground_channel
        self.conv_out = Conv3d(widths[3], num_classes + int(foreground_channel), 1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.conv_out(self.decode(feats))
