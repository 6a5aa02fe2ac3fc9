"""The authors' released STEm-Seg network, key for key (``model.architecture: official``).

Built from our parts with the authors' switches: the ``msra_resnet{50,101}_fpn`` backbone
(frozen BN eps 0, stride in the first 1x1 conv, bilinear FPN upsampling), the squeeze-expand
heads of squeeze_expand.py (zero-counting temporal average pooling, bias-free 1x1x1 up-path
convs), a mixing function in their dim order (``tyx`` for their "xyt", ``yxff`` for "xyff").

- ``embedding_head`` gives the embedding offsets, the raw variances and, unless
  ``model.separate_seediness_head``, the seediness channel; ``seediness_head`` otherwise (DAVIS);
- ``semseg_head`` (``model.semantic_head``) gives C class logits plus, with
  ``model.foreground_channel``, a last foreground logit (KITTI MOTS, YouTube-VIS).

``forward(images)`` in eval mode, images (B, L, 3, H, W) in ``input.channel_order`` at the 0..255
scale, H and W multiples of 32, L <= ``model.clip_length`` = T (a shorter clip is front-padded
with its first frame, as the authors pad short sequences, and the padding's outputs are
dropped) -> {"embeddings" (B, E, L, H/4, W/4) = tanh(0.25 raw) + grid, "precisions"
(B, E, L, H/4, W/4) = exp(raw) * 10 (free dims: their ``free_dim_bandwidths``), "seediness"
(B, L, H/4, W/4), ["semantic" (B, C, L, H/4, W/4) class logits], ["foreground" (B, L, H/4,
W/4) sigmoid probability]}. Inference only: train with ``model.architecture: stemseg``.
"""
from __future__ import annotations

import torch
from torch import nn

from stemseg_core.config import Config
from stemseg_core.model.squeeze_expand import (
    OfficialEmbeddingHead,
    OfficialSeedinessHead,
    OfficialSemsegHead,
)
from stemseg_core.model.stemseg import STEmSeg
from stemseg_core.registry import ARCHITECTURES, BACKBONES, MIXING_FUNCTIONS

#: Smallest input side: torch's AvgPool3d(3) needs >= 3 pixels at 1/32.
MIN_INPUT_SIDE = 96


class OfficialSTEmSeg(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        self.clip_length = int(m.clip_length)
        self.num_outputs_stride = 4
        self.backbone = BACKBONES.get(m.backbone.name)(m.backbone)
        c = self.backbone.out_channels
        widths, groups = list(m.decoder.widths), int(m.decoder.groupnorm_groups)
        self.mixing = MIXING_FUNCTIONS.get(m.embedding.mixing)(m.embedding,
                                                               free_precision_buffer=True)
        self.embedding_head = OfficialEmbeddingHead(
            c, widths, groups, self.clip_length, self.mixing.dims, self.mixing.num_variance,
            seediness=not m.separate_seediness_head)
        self.seediness_head = (OfficialSeedinessHead(c, widths, groups, self.clip_length)
                               if m.separate_seediness_head else None)
        self.has_semantic = bool(m.semantic_head)
        #: the semantic head's last channel is a foreground logit (outputs "foreground")
        self.has_foreground = self.has_semantic and bool(m.foreground_channel)
        self.semseg_head = (OfficialSemsegHead(c, list(m.semantic_widths) or widths, groups,
                                               self.clip_length, m.num_classes,
                                               foreground_channel=m.foreground_channel)
                            if self.has_semantic else None)
        self.register_buffer("pixel_mean", torch.tensor(m.pixel_mean, dtype=torch.float32)
                             .view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(m.pixel_std, dtype=torch.float32)
                             .view(1, 1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, targets: list | None = None
                ) -> dict[str, torch.Tensor]:
        if self.training:
            raise ValueError("model.architecture 'official' is for inference (the authors' "
                             "released weights); call model.eval(), or train with "
                             "model.architecture=stemseg")
        STEmSeg.check_input(images)
        b, n, _, h, w = images.shape
        feats = self.encode_frames(images.reshape(b * n, 3, h, w))
        outs = [self.decode_clip(*[f[i * n:(i + 1) * n] for f in feats]) for i in range(b)]
        return outs[0] if b == 1 else {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def encode_frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per frame: (N, 3, H, W) 0..255 in input.channel_order -> FPN maps P2..P5, each
        (N, C, H/s, W/s) for s = 4, 8, 16, 32 (frames are independent here)."""
        h, w = frames.shape[-2:]
        if min(h, w) < MIN_INPUT_SIDE:
            raise ValueError(f"images {h}x{w}: the authors' layout needs H and W >= "
                             f"{MIN_INPUT_SIDE} (its 3x3x3 pooling needs 1/32 maps of >= 3 "
                             f"pixels); use larger images or input.min_side")
        x = (frames - self.pixel_mean[0]) / self.pixel_std[0]
        return tuple(self.backbone(x))

    def decode_clip(self, *feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per clip: P2..P5 of its L <= T frames, each (L, C, h, w) -> the outputs of the
        module docstring with batch 1 (a shorter clip: the first frame's features repeated in
        front, their outputs dropped)."""
        n, t = int(feats[0].shape[0]), self.clip_length
        if n > t:
            raise ValueError(f"a clip of {n} frames is longer than model.clip_length={t}")
        if n < t:  # the authors' rule for short sequences: repeat the first frame in front
            feats = tuple(torch.cat([f[:1].expand(t - n, *f.shape[1:]), f]) for f in feats)
        # (T, C, h, w) -> (1, C, T, h, w), coarsest first
        vols = [f.permute(1, 0, 2, 3)[None] for f in feats[::-1]]
        raw_emb, raw_var, seediness = self.embedding_head(vols)
        if self.seediness_head is not None:
            seediness = self.seediness_head(vols)
        out = {
            "embeddings": self.mixing.embeddings(
                raw_emb, time_scale=float(self.embedding_head.time_scale)),
            "precisions": self.mixing.precisions(raw_var),
            "seediness": seediness,
        }
        if self.semseg_head is not None:
            logits = self.semseg_head(vols)
            if self.semseg_head.foreground_channel:
                out["semantic"] = logits[:, :-1]
                out["foreground"] = torch.sigmoid(logits[:, -1])
            else:
                out["semantic"] = logits
        if n < t:
            out = {k: v[:, :, t - n:] if v.dim() == 5 else v[:, t - n:] for k, v in out.items()}
        return out


@ARCHITECTURES.register("official")
def build_official(cfg: Config) -> OfficialSTEmSeg:
    return OfficialSTEmSeg(cfg)
