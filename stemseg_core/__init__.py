"""stemseg_core: STEm-Seg (Athar et al., ECCV 2020) video instance segmentation, without ROS.

Public entry points (imported lazily so `import stemseg_core` stays cheap)::

    cfg = stemseg_core.load_config("config/model/demo_cpu.yaml", ["inference.clip_overlap=2"])
    model = stemseg_core.build_model(cfg)
    tracker = stemseg_core.StreamingTracker.from_checkpoint("checkpoints/stemseg_demo.pt")
    for frame_result in tracker.push(rgb_uint8_image, stamp): ...
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "stemseg_core.config",
    "Config": "stemseg_core.config",
    "ConfigError": "stemseg_core.config",
    "build_model": "stemseg_core.model",
    "StreamingTracker": "stemseg_core.inference.tracker",
    "FrameResult": "stemseg_core.inference.types",
    "TrackedInstance": "stemseg_core.inference.types",
    "load_checkpoint": "stemseg_core.checkpoint",
    "save_checkpoint": "stemseg_core.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stemseg_core' has no attribute '{name}'")
