"""Temporal Squeeze-Expand (TSE) decoder (paper sec. 3.5, Fig. 3; block counts from the authors).

Input: 4 feature volumes (B, C, T, H/s, W/s) for s = 4, 8, 16, 32. Per scale a stack of
Conv3d 3x3x3 -> GroupNorm -> ReLU -> AvgPool3d(k=3, stride (2, 1, 1), pad 1) blocks squeezes time
(3 blocks at 1/32, 2 at 1/16, 1 at 1/8 and 1 at 1/4). The scales are fused coarse -> fine by
trilinear upsampling (time and space) + concat + 1x1x1 conv; the result is expanded back to all T
frames. Output: (B, widths[3], T, H/4, W/4).

The temporal pooling maps a length t to floor((t - 1) / 2) + 1 >= 1, so any T >= 1 works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Number of squeeze blocks at scales 1/32, 1/16, 1/8, 1/4.
BLOCKS_PER_SCALE = (3, 2, 1, 1)


class Conv3d(nn.Conv3d):
    """nn.Conv3d (stride 1, same state_dict) that runs as one 2D convolution on the CPU.

    PyTorch's CPU Conv3d falls back to a slow unfused kernel; on the CPU the kt temporal taps are
    stacked into channels and computed by a single (oneDNN) Conv2d over all frames instead, which
    gives exactly the same result ~2x faster, forward and backward. CUDA uses cuDNN's Conv3d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or self.stride != (1, 1, 1) or self.groups != 1:
            return super().forward(x)
        b, c, t, h, w = x.shape
        kt = self.kernel_size[0]
        pt, ph, pw = self.padding
        xp = F.pad(x, (0, 0, 0, 0, pt, pt)) if pt else x
        t_out = xp.shape[2] - kt + 1
        # (B, kt*C, T_out, H, W): tap k of output frame i is input frame i + k
        taps = torch.cat([xp[:, :, k:k + t_out] for k in range(kt)], dim=1)
        frames = taps.transpose(1, 2).reshape(b * t_out, kt * c, h, w)
        weight = self.weight.transpose(1, 2).reshape(self.out_channels, kt * c,
                                                      *self.kernel_size[1:])
        y = F.conv2d(frames, weight, self.bias, padding=(ph, pw))
        return y.reshape(b, t_out, self.out_channels, *y.shape[-2:]).transpose(1, 2)


class TemporalSqueezePool(nn.Module):
    """AvgPool3d(k=3, stride (2, 1, 1), pad 1) with edge-replicated padding.

    Padding explicitly (instead of the pool's zero padding) keeps borders unbiased and lets the
    pool run on inputs smaller than the kernel (T = 1 or 2, 2x2 maps at 1/32 of a 64 px image).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate")
        return F.avg_pool3d(x, kernel_size=3, stride=(2, 1, 1))


class SqueezeBlock(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__(
            Conv3d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(groups, out_ch),
            nn.ReLU(inplace=True),
            TemporalSqueezePool(),
        )


def _fusion(in_ch: int, out_ch: int, groups: int) -> nn.Sequential:
    return nn.Sequential(Conv3d(in_ch, out_ch, kernel_size=1, bias=False),
                         nn.GroupNorm(groups, out_ch), nn.ReLU(inplace=True))


class TSEDecoder(nn.Module):
    """Squeeze-expand decoder; `widths` are the channels at 1/32, 1/16, 1/8, 1/4."""

    def __init__(self, in_channels: int, widths: list[int] | tuple[int, ...], groups: int):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"TSEDecoder needs 4 widths (1/32, 1/16, 1/8, 1/4), got {widths}")
        self.widths = list(widths)
        self.out_channels = self.widths[3]
        squeeze = []
        for n_blocks, w in zip(BLOCKS_PER_SCALE, self.widths):
            blocks = [SqueezeBlock(in_channels if i == 0 else w, w, groups)
                      for i in range(n_blocks)]
            squeeze.append(nn.Sequential(*blocks))
        self.squeeze = nn.ModuleList(squeeze)
        # fuse[k]: (upsampled coarser, width w[k]) + this scale (width w[k+1]) -> w[k+1]
        self.fuse = nn.ModuleList(
            _fusion(self.widths[k] + self.widths[k + 1], self.widths[k + 1], groups)
            for k in range(3))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """feats: volumes at strides 4, 8, 16, 32 (finest first), each (B, C, T, h, w)."""
        t_out, h_out, w_out = feats[0].shape[2:]
        coarse_first = [feats[3], feats[2], feats[1], feats[0]]
        x = self.squeeze[0](coarse_first[0])
        for k in range(1, 4):
            y = self.squeeze[k](coarse_first[k])
            x = F.interpolate(x, size=y.shape[2:], mode="trilinear", align_corners=False)
            x = self.fuse[k - 1](torch.cat([x, y], dim=1))
        return F.interpolate(x, size=(t_out, h_out, w_out), mode="trilinear", align_corners=False)
