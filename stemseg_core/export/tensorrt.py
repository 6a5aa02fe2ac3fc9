"""TensorRT (FP16) engines via torch-tensorrt, cached per GPU and TensorRT version.

A serialized engine only runs on the GPU model and TensorRT version it was built for, so the cache
key holds both (plus the weights' hash, input shape and precision); a change of any of them builds
a new engine instead of loading a stale one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from stemseg_core.export.wrapper import DictOutputs, TupleOutputs


class TensorRTUnavailable(RuntimeError):
    """No CUDA device or no torch-tensorrt installed."""


def require_tensorrt():
    """(torch_tensorrt, tensorrt) modules; TensorRTUnavailable says why not."""
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("TensorRT needs a CUDA GPU; none is available (on a CPU, "
                                  "export --format torchscript or onnx)")
    try:
        import tensorrt
        import torch_tensorrt
    except ImportError as e:
        raise TensorRTUnavailable(f"torch-tensorrt is not installed ({e}); install it with "
                                  f"`pip install torch-tensorrt` matching torch "
                                  f"{torch.__version__}") from None
    return torch_tensorrt, tensorrt


def state_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def engine_key(model: nn.Module, shape: tuple[int, ...], precision: str) -> dict[str, str]:
    """Everything an engine depends on."""
    torch_tensorrt, tensorrt = require_tensorrt()
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "tensorrt": tensorrt.__version__, "torch_tensorrt": torch_tensorrt.__version__,
            "weights": state_hash(model), "shape": "x".join(map(str, shape)),
            "precision": precision}


def build_or_load_engine(model: nn.Module, shape: tuple[int, ...], cache_dir: str | Path,
                         precision: str = "fp16") -> tuple[DictOutputs, Path, bool]:
    """Return (module giving the output dict, engine path, built_now)."""
    torch_tensorrt, _ = require_tensorrt()
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, got {precision!r}")
    key = engine_key(model, shape, precision)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"stemseg_{digest}.ep"
    wrapped = TupleOutputs(model).cuda().eval()
    names = wrapped.names
    if path.is_file():
        module = torch.export.load(str(path)).module()
        return DictOutputs(module, names), path, False
    example = torch.rand(*shape, device="cuda") * 255
    precisions = {torch.float16, torch.float32} if precision == "fp16" else {torch.float32}
    trt_module = torch_tensorrt.compile(
        wrapped, ir="dynamo", inputs=[torch_tensorrt.Input(shape, dtype=torch.float32)],
        enabled_precisions=precisions, min_block_size=1)
    torch_tensorrt.save(trt_module, str(path), inputs=[example])
    (cache_dir / f"stemseg_{digest}.json").write_text(json.dumps(key, indent=2))
    return DictOutputs(trt_module, names), path, True
