"""Loading a :class:`Config` from YAML and overrides (values coerced to the field types of the
schema). Overrides are either ``key=value`` strings (the CLI's ``--set``; values read as YAML) or
a typed mapping ``{"section.key": python_value}`` (programs, e.g. the ROS node: no text round
trip). Example::

    cfg = load_config("config/model/demo_cpu.yaml", ["train.max_steps=100", "model.clip_length=4"])
    cfg = load_config(None, {"model.clip_length": 4, "inference.backend": "openvino"})

Every bad value raises :class:`ConfigError` naming the key, the value and what is allowed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from stemseg_core.config.coerce import build
from stemseg_core.config.schema import Config
from stemseg_core.config.validation import validate
from stemseg_core.errors import ConfigError

#: ``key=value`` strings, or {"section.key": value} with Python values.
Overrides: TypeAlias = Sequence[str] | Mapping[str, Any]


def _set_value(data: dict[str, Any], key: str, value: Any, what: str) -> None:
    """data[section][...][name] = value for the dotted ``key``."""
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{what}': '{p}' is not a section")
    node[parts[-1]] = value


def _apply_override(data: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override '{override}' must look like key.sub=value")
    key, raw = override.split("=", 1)
    _set_value(data, key, yaml.safe_load(raw) if raw.strip() else "", override)


def apply_overrides(data: dict[str, Any], overrides: Overrides | None) -> None:
    """Apply ``key=value`` strings or a typed {"section.key": value} mapping to ``data``."""
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            _set_value(data, key, _deep_copy(value), key)
        return
    for o in overrides or []:
        _apply_override(data, o)


def config_from_dict(data: dict[str, Any] | None, overrides: Overrides | None = None, *,
                     model_parts: bool = True) -> Config:
    """Build and validate a :class:`Config` from a (partial) nested dict plus overrides
    (``model_parts``: see :func:`validate`)."""
    data = _deep_copy(data or {})
    apply_overrides(data, overrides)
    cfg = build(Config, data)
    validate(cfg, model_parts=model_parts)
    return cfg


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def load_config(path: str | Path | None = None, overrides: Overrides | None = None) -> Config:
    """Load a YAML config file (None = all defaults), apply the overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p} (model configs live in config/model/)")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level, "
                              f"got {type(data).__name__}")
    return config_from_dict(data, overrides)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
