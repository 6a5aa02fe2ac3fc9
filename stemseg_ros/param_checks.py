"""Validation of node parameter values: one value on its own (:func:`check_value`), all of them
together (:func:`validate`), and a set request against the node's state (:func:`check_changes`).
Every refusal is a ParamError naming the parameter, the value (a short prefix) and the fix."""
from __future__ import annotations

import math
from typing import Any

from stemseg_core.config import parse_flat_mapping
from stemseg_core.config import short_repr as short
from stemseg_ros.param_spec import FROM_CHECKPOINT, ParamError, Spec
from stemseg_ros.params import (
    DEFAULT_CHECKPOINT,
    MODEL_CHOICE,
    SPEC_BY_NAME,
    SPECS,
    THRESHOLDS,
    PerceptionParams,
)


def normalise(name: str, value: Any) -> Any:
    """The value as the node keeps it: lists as tuples (empty strings left out), ints of float
    parameters as floats. Raises ParamError on a wrong type."""
    spec = SPEC_BY_NAME[name]
    if spec.item is not None:
        if value is None:
            return ()
        item = (int, float) if spec.item is float else spec.item  # integers for floats
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, item) and not isinstance(v, bool) for v in value):
            raise ParamError(bad_value_message(spec, value))
        if spec.item is float:
            return tuple(float(v) for v in value)
        return tuple(v for v in value if v != "")
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not spec.kind:
        raise ParamError(bad_value_message(spec, value))
    return value


def bad_value_message(spec: Spec, value: Any) -> str:
    return (f"parameter '{spec.name}': invalid value {short(value)} ({type(value).__name__}); "
            f"expected {spec.allowed()}")


def check_changes(changes: list[Any], *, active: bool, remote_model_change: bool
                  ) -> dict[str, Any]:
    """A parameter set request (rclpy Parameters) checked against the node's state: returns
    {name: normalised value} of our parameters; raises ParamError with the reason to refuse
    (read-only, the model choice without allow_remote_model_change, a bad value, or a reload
    parameter while active)."""
    values = {}
    for prm in changes:
        spec = SPEC_BY_NAME.get(prm.name)
        if spec is None:
            continue
        if spec.read_only:  # rclpy refuses these by their descriptor first; kept as a fence
            raise ParamError(f"parameter '{spec.name}' is set at start only (launch or params "
                             f"file): restart the node to change it")
        if spec.name in MODEL_CHOICE and not remote_model_change:
            raise ParamError(f"parameter '{spec.name}' chooses the model and is set at start "
                             f"only (launch or params file); start the node with "
                             f"allow_remote_model_change: true to change it at run time")
        values[spec.name] = check_value(spec.name, prm.value)
        if active and not spec.live:
            raise ParamError(f"parameter '{spec.name}' cannot change while the node is active "
                             f"(it needs a reload): deactivate, set it, activate again")
    return values


def check_value(name: str, value: Any) -> Any:
    """Validate one parameter on its own (type, range, choices); returns it normalised.

    Raises ParamError naming the parameter, the value and what is allowed.
    """
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return value
    value = normalise(name, value)
    if spec.choices and value not in spec.choices:
        raise ParamError(bad_value_message(spec, value))
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        raise ParamError(bad_value_message(spec, value))
    if name in THRESHOLDS and value not in (FROM_CHECKPOINT, "", ()):
        _check_threshold(name, value)
    if name == "input_roi" and value and (len(value) != 4 or min(value) < 0
                                          or value[2] == 0 or value[3] == 0):
        raise ParamError(f"parameter 'input_roi': invalid value {short(list(value))}; expected "
                         f"[] or [x, y, width, height] with x, y >= 0 and width, height >= 1")
    if name == "lidar_to_camera" and value and (
            len(value) not in (12, 16) or not all(math.isfinite(v) for v in value)):
        raise ParamError(f"parameter 'lidar_to_camera': invalid value {short(list(value))}; "
                         f"expected [] or 16 (4x4) or 12 (3x4) finite numbers, row-major")
    if name == "cameras" and value:
        from stemseg_core.inference.tracker_group import check_stream_names

        try:
            check_stream_names(value)
        except ValueError as e:
            raise ParamError(f"parameter 'cameras': {e}") from None
    if name == "expected_input_size":
        from stemseg_ros.camera_size import parse_size

        try:
            parse_size(value)
        except ValueError as e:
            raise ParamError(f"parameter 'expected_input_size': {e}") from None
    return value


def _check_threshold(name: str, value: Any) -> None:
    """Range and form of a threshold value as the core defines it. Class names are checked
    against the model once it is loaded (the node does not know them before)."""
    from stemseg_core.config import ConfigError, check_live_threshold

    if name == "classes":
        return
    try:  # bounded: flat {name: number} only, never a YAML parser on a peer's string
        parsed = parse_flat_mapping(value, f"parameter '{name}'") if isinstance(
            value, str) else value
        names = list(parsed) if isinstance(parsed, dict) else []
        check_live_threshold(name, parsed, ["background", *names], key=f"parameter '{name}'")
    except ConfigError as e:
        raise ParamError(f"{e} (-1 or \"\" = the checkpoint's value)") from None


def validate(p: PerceptionParams) -> None:
    """Check every value and the relations between them. Raises ParamError naming the parameter."""
    for spec in SPECS:
        check_value(spec.name, getattr(p, spec.name))
    if not p.checkpoint:
        raise ParamError("parameter 'checkpoint': no checkpoint given; pass the path of a stemseg "
                         f"checkpoint (.pt), e.g. -p checkpoint:={DEFAULT_CHECKPOINT}")
    if p.use_lidar and not p.lidar_to_camera and not p.calib_file:
        raise ParamError("parameter 'use_lidar': true needs the LiDAR-to-camera transform: set "
                         "lidar_to_camera (16 numbers, row-major) or calib_file (KITTI calib "
                         "with Tr_velo_cam)")
    if p.use_lidar and p.cameras:
        raise ParamError("parameter 'use_lidar': not with several cameras (parameter 'cameras'): "
                         "lidar_to_camera is one transform; run a node per LiDAR-camera pair, "
                         "or use_depth (per camera: <name>/depth/image_raw)")
    if p.clip_length > 0 and p.clip_overlap != FROM_CHECKPOINT and p.clip_overlap >= p.clip_length:
        raise ParamError(f"parameter 'clip_overlap': {p.clip_overlap} must be smaller than "
                         f"clip_length={p.clip_length} (allowed 0..{p.clip_length - 1}, or -1)")


__all__ = ["bad_value_message", "check_changes", "check_value", "normalise", "validate"]
