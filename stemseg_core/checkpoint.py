"""Checkpoints: one file with weights, config, class names and a format version.

Layout (a dict saved with torch.save)::

    {"format": "stemseg-checkpoint", "version": 1, "config": Config.to_dict(),
     "class_names": [...], "model": state_dict, "train_state": {...} | absent}

Writes are atomic (temporary file + rename), so a kill mid-save never leaves a damaged file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from stemseg_core.config import Config, config_from_dict

FORMAT = "stemseg-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is missing, damaged, not a stemseg checkpoint, or of an unsupported version."""


def save_checkpoint(path: str | Path, model_state: dict[str, torch.Tensor], cfg: Config,
                    train_state: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "class_names": list(cfg.model.class_names),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
    }
    if train_state is not None:
        payload["train_state"] = train_state
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path, overrides: list[str] | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[Config, dict[str, Any]]:
    """Read and check a checkpoint. Returns (config with `overrides` applied, raw payload)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for truncated/garbage files
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({type(e).__name__}: {e}); the file is "
            f"damaged or truncated - re-copy it or pick another checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a stemseg checkpoint (no '{FORMAT}' marker). Checkpoints are written by "
            f"`stemseg train`; a bare state_dict can be wrapped with stemseg_core.checkpoint."
            f"save_checkpoint(path, state_dict, cfg)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('version')} is not "
                              f"supported by this stemseg (reads version {VERSION})")
    for key in ("config", "model", "class_names"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    cfg = config_from_dict(payload["config"], overrides)
    return cfg, payload
