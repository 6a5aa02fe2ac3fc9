"""Inference backends: what runs the network for the streaming tracker (config
``inference.backend``/``precision``/``engine_cache_dir``/``num_threads``).

- ``torch``: eager PyTorch, CPU or CUDA (AMP with fp16/bf16). Default; nothing to build.
- ``onnxruntime``: ONNX graphs in ONNX Runtime (CPU; the CUDA provider where installed).
- ``openvino``: OpenVINO IR on Intel CPUs/iGPUs, fp32/bf16/fp16, int8 from NNCF
  (`stemseg export --format openvino --precision int8 --calibration DATA`).
- ``tensorrt``: TensorRT engines built with torch-tensorrt on NVIDIA GPUs, fp16/fp32.
- ``auto``: the fastest of these installed for the device (base.AUTO_ORDER).

What the node runs when its parameters leave it open: base.DEPLOYMENT_DEFAULTS.

Every backend runs the same two graphs (export/split.py): a per-frame encoder whose features
are reused by overlapping clips (runner.py), and a per-clip decoder. Built artifacts are cached
on disk (cache.py).
"""
from __future__ import annotations

import importlib
from typing import Any

# Imported lazily (PEP 562), so that importing one module of this package (runner.py, which the
# torch-free tracker path uses) does not import the torch-based ones.
_LAZY = {**{name: "stemseg_core.backends.base" for name in (
    "AUTO_ORDER", "DEPLOYMENT_DEFAULTS", "Backend", "BackendUnavailable", "create_backend",
    "deployment_default", "register", "registered", "resolve_auto")},
    "ArtifactCache": "stemseg_core.backends.cache",
    "default_cache_dir": "stemseg_core.backends.cache",
    "NetworkRunner": "stemseg_core.backends.runner"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stemseg_core.backends' has no attribute '{name}'")
