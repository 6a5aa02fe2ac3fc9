"""TorchScript export (traced) with the config stored inside the file."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from stemseg_core.export.wrapper import DictOutputs, TupleOutputs


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Trace `model` on `example` (B, T, 3, H, W) and save; the graph is fixed to that shape."""
    wrapped = TupleOutputs(model)
    with torch.inference_mode():
        traced = torch.jit.trace(wrapped, example, check_trace=False)
    extra = {"stemseg.json": json.dumps({"outputs": list(wrapped.names),
                                         "input_shape": list(example.shape),
                                         "config": model.cfg.to_dict()})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path), _extra_files=extra)
    return path


def load_torchscript(path: str | Path, device: str = "cpu") -> tuple[DictOutputs, dict]:
    """Load an exported file -> (module returning the output dict, metadata)."""
    extra = {"stemseg.json": ""}
    module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    meta = json.loads(extra["stemseg.json"] or "{}")
    if "outputs" not in meta:
        raise ValueError(f"{path}: not a stemseg TorchScript export (no stemseg.json metadata)")
    return DictOutputs(module, tuple(meta["outputs"])), meta
