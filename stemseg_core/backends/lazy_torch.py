"""``torch`` imported on first use, for the backends that run the torch model (torch, inductor,
tensorrt): the registry imports every backend module to learn their names, and a process that
runs OpenVINO or ONNX Runtime must not load torch for that (its import alone is ~500 MB)."""
from __future__ import annotations

import importlib
from typing import Any


class LazyTorch:
    """Stands for the ``torch`` module: the first attribute looked up imports it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("torch"), name)


torch = LazyTorch()

__all__ = ["LazyTorch", "torch"]
