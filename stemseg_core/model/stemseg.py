"""The STEm-Seg network: backbone + FPN per frame, TSE decoders, heads, mixing, losses.

``forward(images, targets=None)`` with images (B, T, 3, H, W) RGB 0..255, H and W multiples of 32,
and s = cfg.model.output_stride (4, the paper; or 2 with the stride-2 refiners of refine.py):

- eval mode -> {"embeddings" (B, E, T, H/s, W/s), "precisions" (B, E, T, H/s, W/s) = 1/variance,
  "seediness" (B, T, H/s, W/s) in [0, 1], "semantic" (B, C, T, H/s, W/s) logits if the head exists}
- train mode -> {"embedding", "smoothness", "seediness", ["semantic"], "total"} scalar losses, with
  targets = list of B dicts {"masks": bool (N, T, H, W), "classes": long (N,), "ignore": bool
  (T, H, W)} at input resolution.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stemseg_core import losses as L
from stemseg_core.config import Config
from stemseg_core.model.chroma_lowpass import chroma_lowpass, luma_weights
from stemseg_core.model.heads import EmbeddingHead, SeedinessHead, SemanticHead
from stemseg_core.model.refine import StrideTwoRefiner
from stemseg_core.model.tse_decoder import TSEDecoder
from stemseg_core.registry import ARCHITECTURES, BACKBONES, MIXING_FUNCTIONS

OUTPUT_STRIDE = 4
INPUT_DIVISOR = 32


#: A low-res pixel joins an instance covering at least this fraction of its input block (and
#: covering more of it than any other instance), so thin objects (pedestrians a few pixels wide)
#: keep pixels at 1/4 resolution instead of vanishing under a majority rule.
MIN_MASK_COVERAGE = 0.25


def downsample_targets(target: dict[str, torch.Tensor], size: tuple[int, int],
                       stride: int = OUTPUT_STRIDE,
                       min_coverage: float = MIN_MASK_COVERAGE) -> dict[str, torch.Tensor]:
    """Targets at input resolution -> output resolution (h, w) = size.

    Each low-res pixel goes to the instance covering most of its input block, if that instance
    covers at least `min_coverage` of it; low-res masks therefore never overlap. A pixel is
    ignored when at least half of its block is. Returns {"masks" (N, T, h, w), "classes" (N,),
    "ignore" (T, h, w)}.
    """
    h, w = size
    masks = target["masks"]
    n, t = masks.shape[:2]

    def coverage(x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        xf = x.reshape(-1, 1, *x.shape[-2:]).float()
        y = F.adaptive_avg_pool2d(xf, (h, w)) if xf.shape[-2:] != (h * stride, w * stride) \
            else F.avg_pool2d(xf, stride)
        return y.reshape(*lead, h, w)

    ignore = target.get("ignore")
    if ignore is None:
        ignore_lr = torch.zeros((t, h, w), dtype=torch.bool, device=masks.device)
    else:
        ignore_lr = coverage(ignore.bool()) >= 0.5
    if n == 0:
        masks_lr = masks.new_zeros((0, t, h, w), dtype=torch.bool)
    else:
        cov = coverage(masks.bool())  # (N, T, h, w)
        best = cov.argmax(dim=0, keepdim=True)
        winner = torch.zeros_like(cov, dtype=torch.bool).scatter_(0, best, True)
        masks_lr = winner & (cov >= min_coverage)
    return {"masks": masks_lr, "classes": target["classes"], "ignore": ignore_lr}


class STEmSeg(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        self.num_outputs_stride = int(m.output_stride)
        self.backbone = BACKBONES.get(m.backbone.name)(m.backbone)
        c = self.backbone.out_channels
        widths, groups = list(m.decoder.widths), m.decoder.groupnorm_groups
        self.mixing = MIXING_FUNCTIONS.get(m.embedding.mixing)(m.embedding)
        self.embedding_decoder = TSEDecoder(c, widths, groups)
        self.seediness_decoder = TSEDecoder(c, widths, groups)
        self.embedding_head = EmbeddingHead(widths[3], self.mixing.dims, self.mixing.num_variance)
        self.seediness_head = SeedinessHead(widths[3])
        self.has_semantic = bool(m.semantic_head)
        self.semantic_class_weights = (list(cfg.loss.semantic_class_weights)
                                       if cfg.loss.semantic_class_weights else None)
        if self.has_semantic:
            semantic_widths = list(m.semantic_widths) or widths
            self.semantic_decoder = TSEDecoder(c, semantic_widths, groups)
            self.semantic_head = SemanticHead(semantic_widths[3], m.num_classes)
        # Stride-2 refiners, one per decoder (model.output_stride: 2); none for the paper's 4.
        self.refiners = nn.ModuleDict()
        if self.num_outputs_stride == 2:
            names = ["embedding", "seediness"] + (["semantic"] if self.has_semantic else [])
            for name in names:
                self.refiners[name] = StrideTwoRefiner(widths[3], self.backbone.stem_channels,
                                                       groups)
        self.register_buffer("pixel_mean", torch.tensor(m.pixel_mean, dtype=torch.float32)
                             .view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(m.pixel_std, dtype=torch.float32)
                             .view(1, 1, 3, 1, 1), persistent=False)
        self.chroma_lowpass = m.chroma_lowpass
        self.luma_weights = luma_weights(cfg.input.channel_order)

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def check_input(images: torch.Tensor) -> None:
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be (B, T, 3, H, W), got shape {tuple(images.shape)}")
        h, w = int(images.shape[3]), int(images.shape[4])
        if h % INPUT_DIVISOR or w % INPUT_DIVISOR or h == 0 or w == 0:
            raise ValueError(f"images shape {tuple(images.shape)}: H and W must be positive "
                             f"multiples of {INPUT_DIVISOR} (got H={h}, W={w}); pad the frames")

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, 3, H, W) 0..255 in input.channel_order -> the backbone's input: the
        chroma low-pass (model.chroma_lowpass), then mean/std normalisation."""
        x = chroma_lowpass(frames, self.chroma_lowpass, self.luma_weights)
        return (x - self.pixel_mean[0]) / self.pixel_std[0]

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """All network outputs, incl. "raw_variance" (B, V, T, H/4, W/4), in any mode."""
        self.check_input(images)
        b, t, _, h, w = images.shape
        x = self.normalize(images.reshape(b * t, 3, h, w))
        refine = len(self.refiners) > 0
        feats = self.backbone(x, with_stem=refine)
        stem = None
        if refine:
            feats, stem = feats
        # (B*T, C, h, w) -> (B, C, T, h, w)
        vols = [f.reshape(b, t, f.shape[1], f.shape[2], f.shape[3]).permute(0, 2, 1, 3, 4)
                for f in feats]

        def decode(name: str, decoder: nn.Module) -> torch.Tensor:
            d = decoder(vols)  # (B, C, T, H/4, W/4)
            return self.refiners[name](d, stem) if refine else d

        raw_emb, raw_var = self.embedding_head(decode("embedding", self.embedding_decoder))
        raw_emb = raw_emb.float()
        raw_var = raw_var.float()
        out = {
            "embeddings": self.mixing.embeddings(raw_emb),
            "precisions": self.mixing.precisions(raw_var),
            "seediness": self.seediness_head(decode("seediness", self.seediness_decoder)).float(),
            "raw_variance": raw_var,
        }
        if self.has_semantic:
            out["semantic"] = self.semantic_head(decode("semantic", self.semantic_decoder)).float()
        return out

    def forward(self, images: torch.Tensor,
                targets: list[dict[str, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        if self.training:
            if targets is None:
                raise ValueError("STEmSeg in train mode needs targets (call model.eval() to "
                                 "get predictions)")
            return self.losses(images, targets)
        out = self.predict(images)
        out.pop("raw_variance")
        return out

    def losses(self, images: torch.Tensor,
               targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Weighted training losses (any mode); see module docstring for `targets`."""
        if len(targets) != images.shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {images.shape[0]} clips")
        out = self.predict(images)
        return self.compute_losses(out, targets)

    def compute_losses(self, out: dict[str, torch.Tensor],
                       targets: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        h, w = out["embeddings"].shape[-2:]
        per_clip: list[dict[str, torch.Tensor]] = []
        for i, tgt in enumerate(targets):
            small = downsample_targets(tgt, (int(h), int(w)), stride=self.num_outputs_stride)
            per_clip.append(L.clip_losses(
                out["embeddings"][i], out["precisions"][i], out["raw_variance"][i],
                out["seediness"][i], small["masks"], small["ignore"],
                out["semantic"][i] if self.has_semantic else None, small["classes"],
                self.semantic_class_weights, self.cfg.loss.seediness_small_instance_area,
                tgt.get("teacher")))
        weights = self.cfg.loss
        result: dict[str, torch.Tensor] = {}
        for name in per_clip[0]:
            result[name] = torch.stack([c[name] for c in per_clip]).mean()
        result["total"] = sum(getattr(weights, k) * v for k, v in result.items())
        return result


def build_model(cfg: Config) -> nn.Module:
    """The network of ``cfg.model.architecture`` for `cfg` (registry.ARCHITECTURES: "stemseg" =
    :class:`STEmSeg`, "official" = the authors' layout); backbone weights from
    cfg.model.backbone.weights if set."""
    return ARCHITECTURES.get(cfg.model.architecture)(cfg)
