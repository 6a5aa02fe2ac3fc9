"""ONNX files of the two graphs of export/split.py (read by ONNX Runtime and OpenVINO).

The frame encoder takes a dynamic number of frames (N, 3, Hp, Wp); the clip decoder is fixed to
one clip length L (one file per L). Inputs and outputs are named: encoder ``frames`` ->
feature_names(model); decoder feature_names(model) -> decoder_names(model).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from stemseg_core.export.split import ClipDecoder, FrameEncoder

log = logging.getLogger(__name__)

#: Most frames one encoder call takes (the dynamic batch dimension's upper bound).
MAX_FRAMES = 64


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            input_names: list[str], output_names: list[str],
            dynamic_shapes: dict | tuple | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # exporter's chatter
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(module, args, str(path), input_names=input_names,
                          output_names=output_names, dynamo=True, verbose=False,
                          dynamic_shapes=dynamic_shapes, external_data=False,
                          optimize=True)
    return path


def export_encoder_onnx(model: nn.Module, frame_shape: tuple[int, int, int],
                        path: str | Path) -> Path:
    """The per-frame encoder for (N, 3, Hp, Wp) inputs, N dynamic (1..MAX_FRAMES)."""
    enc = FrameEncoder(model).eval()
    example = torch.rand(2, *frame_shape) * 255
    n = torch.export.Dim("n", min=1, max=MAX_FRAMES)
    return _export(enc, (example,), Path(path), ["frames"], list(enc.names),
                   {"frames": {0: n}})


def export_decoder_onnx(model: nn.Module, frame_shape: tuple[int, int, int], clip_length: int,
                        path: str | Path) -> Path:
    """The clip decoder for clips of ``clip_length`` frames of (3, Hp, Wp)."""
    enc, dec = FrameEncoder(model).eval(), ClipDecoder(model).eval()
    with torch.inference_mode():
        feats = tuple(f.clone() for f in enc(torch.rand(clip_length, *frame_shape) * 255))
    return _export(dec, feats, Path(path), list(enc.names), list(dec.names), None)
