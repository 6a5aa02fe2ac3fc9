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
from stemseg_core.backends.base import (
    AUTO_ORDER,
    DEPLOYMENT_DEFAULTS,
    Backend,
    BackendUnavailable,
    create_backend,
    deployment_default,
    register,
    registered,
    resolve_auto,
)
from stemseg_core.backends.cache import ArtifactCache, default_cache_dir
from stemseg_core.backends.runner import NetworkRunner

__all__ = ["AUTO_ORDER", "DEPLOYMENT_DEFAULTS", "ArtifactCache", "Backend", "BackendUnavailable",
           "NetworkRunner", "create_backend", "default_cache_dir", "deployment_default",
           "register", "registered", "resolve_auto"]
