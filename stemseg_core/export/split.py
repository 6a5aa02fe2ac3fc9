"""The network cut in two graphs: a per-frame encoder (normalisation + backbone + FPN) and a
per-clip decoder (TSE decoders, optional stride-2 refiners, heads, mixing).

Overlapping clips share frames, so the encoder's output of a frame can be computed once and
reused by every clip that contains it (backends/runner.py). ``ClipDecoder(FrameEncoder(x))``
equals ``STEmSeg.forward`` in eval mode (the steps of ``STEmSeg.predict``; a test pins it).

Shapes: frames (N, 3, Hp, Wp) RGB 0..255 -> features: FPN maps at strides 4, 8, 16, 32, each
(N, C, Hp/s, Wp/s), then the stem (N, S, Hp/2, Wp/2) when the model has stride-2 refiners.
The decoder takes the L frames of one clip, each tensor (L, ...), and returns the model's output
dict with batch 1: embeddings (1, E, L, h, w), precisions (1, E, L, h, w), seediness (1, L, h, w)
and semantic logits (1, C, L, h, w) when the model has a semantic head.

A model with its own ``encode_frames(frames)`` and ``decode_clip(*feats)`` (the authors'
layout, model/architectures/official.py) is cut there instead; its decoder adds ``foreground``
(1, L, h, w) where it has that channel (``has_foreground``).
"""
from __future__ import annotations

import torch
from torch import nn

#: Output order of the decoder graph (semantic only when the model has the head).
DECODER_OUTPUTS = ("embeddings", "precisions", "seediness", "semantic")


def has_own_split(model: nn.Module) -> bool:
    """Whether ``model`` cuts itself (``encode_frames`` / ``decode_clip``)."""
    return hasattr(model, "encode_frames") and hasattr(model, "decode_clip")


def _refines(model: nn.Module) -> bool:
    return len(getattr(model, "refiners", ())) > 0


def feature_names(model: nn.Module) -> tuple[str, ...]:
    """Names of the encoder's outputs, in order: p4, p8, p16, p32 [, stem]."""
    names = ("p4", "p8", "p16", "p32")
    return names + ("stem",) if _refines(model) else names


def decoder_names(model: nn.Module) -> tuple[str, ...]:
    names = tuple(n for n in DECODER_OUTPUTS if n != "semantic" or model.has_semantic)
    return names + ("foreground",) if getattr(model, "has_foreground", False) else names


class FrameEncoder(nn.Module):
    """frames (N, 3, Hp, Wp) 0..255 -> tuple of per-frame features (see module doc)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = feature_names(model)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        if has_own_split(m):
            return tuple(m.encode_frames(frames))
        x = m.normalize(frames)
        if _refines(m):
            maps, stem = m.backbone(x, with_stem=True)
            return (*maps, stem)
        return tuple(m.backbone(x))


class ClipDecoder(nn.Module):
    """Features of the L frames of one clip (each (L, ...)) -> the model's outputs, batch 1, as
    a tuple in ``names`` order (``as_dict`` gives the dict)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = decoder_names(model)

    def forward(self, *feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        if has_own_split(m):
            out = m.decode_clip(*feats)
            return tuple(out[n].float() for n in self.names)
        refine = _refines(m)
        stem = feats[4] if refine else None
        vols = [f.reshape(1, f.shape[0], f.shape[1], f.shape[2], f.shape[3]).permute(0, 2, 1, 3, 4)
                for f in feats[:4]]

        def decode(name: str, decoder: nn.Module) -> torch.Tensor:
            d = decoder(vols)
            return m.refiners[name](d, stem) if refine else d

        raw_emb, raw_var = m.embedding_head(decode("embedding", m.embedding_decoder))
        out = [m.mixing.embeddings(raw_emb.float()), m.mixing.precisions(raw_var.float()),
               m.seediness_head(decode("seediness", m.seediness_decoder)).float()]
        if m.has_semantic:
            out.append(m.semantic_head(decode("semantic", m.semantic_decoder)).float())
        return tuple(out)

    def as_dict(self, outs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, outs))
