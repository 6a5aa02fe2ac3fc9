"""What the core gets from the node's parameters: the typed config override for loading the
checkpoint, the live thresholds (the checkpoint's values where a parameter says so) and the
checkpoint's path. Values keep their Python types; no text is re-read as YAML."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stemseg_core.config import parse_flat_mapping
from stemseg_ros.param_spec import FROM_CHECKPOINT, ParamError
from stemseg_ros.params import SPECS, THRESHOLDS, PerceptionParams


def tracker_overrides(p: PerceptionParams, device: str = "cpu") -> dict[str, Any]:
    """The typed config override ({"section.key": value}, config/loading.py) for
    StreamingTracker.from_checkpoint on ``device`` (cpu or cuda): flip_test always, backend and
    precision the device's deployment default when both are "", the rest only when set (else
    as trained)."""
    out: dict[str, Any] = {"inference.flip_test": bool(p.flip_test)}
    for spec in SPECS:  # the plain ones: passed on as they are when not the default
        value = getattr(p, spec.name)
        if spec.core and value != spec.default:
            out[spec.core] = value
    if p.input_width or p.input_height:
        w, h = p.input_width or p.input_height, p.input_height or p.input_width
        out["input.min_side"], out["input.max_side"] = min(w, h), max(w, h)
    backend, precision = p.backend, p.precision
    if not backend and not precision:
        from stemseg_core.backends import deployment_default

        backend, precision = deployment_default(device)  # a device string: no torch needed
    for key, value in (("backend", backend), ("precision", precision)):
        if value:
            out[f"inference.{key}"] = value
    return out


def thresholds(values: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Threshold parameter values -> what StreamingTracker.set_thresholds takes: "the
    checkpoint's value" (-1, "") replaced by `checkpoint`'s, per-class strings parsed."""
    out = {}
    for name, v in values.items():
        if name not in THRESHOLDS:
            continue
        if v in (FROM_CHECKPOINT, "", ()):
            v = checkpoint[name]
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, str):
            v = parse_flat_mapping(v, f"parameter '{name}'")
        out[name] = v
    return out


def resolve_checkpoint(path: str, share_dir: str | None) -> Path:
    """An existing checkpoint file for `path`: as given, else relative to the package share.

    Raises ParamError naming the places looked at.
    """
    p = Path(path).expanduser()
    tried = [p]
    if p.is_file():
        return p
    if not p.is_absolute() and share_dir:
        q = Path(share_dir) / p
        tried.append(q)
        if q.is_file():
            return q
    raise ParamError(f"parameter 'checkpoint': file not found: {path!r} (looked at "
                     f"{', '.join(str(t) for t in tried)}); train one with `stemseg train` or "
                     f"pass an existing .pt path")


__all__ = ["resolve_checkpoint", "thresholds", "tracker_overrides"]
