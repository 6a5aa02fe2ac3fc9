"""ONNX export (torch.export-based exporter) with a numerical check against onnxruntime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from stemseg_core.export.wrapper import TupleOutputs


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Export to ONNX for a fixed input shape (B, T, 3, H, W); outputs named as OUTPUT_NAMES."""
    wrapped = TupleOutputs(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        torch.onnx.export(wrapped, (example,), str(path), input_names=["images"],
                          output_names=list(wrapped.names), dynamo=True, verbose=False)
    return path


def check_onnx(model: nn.Module, example: torch.Tensor, path: str | Path) -> dict[str, float]:
    """Max absolute difference per output between PyTorch and onnxruntime on `example`."""
    import onnxruntime as ort

    wrapped = TupleOutputs(model)
    with torch.inference_mode():
        ref = wrapped(example)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"images": example.cpu().numpy()})
    return {n: float(np.abs(o - r.cpu().numpy()).max()) for n, o, r in zip(wrapped.names, outs,
                                                                             ref)}
