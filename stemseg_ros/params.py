"""Parameters of the perception node: declared in one table, validated in one place.

Every parameter has a default, a description and (for numbers) a range, so `ros2 param describe`
shows what is allowed. Sentinel values (``0`` / ``-1``) mean "use the checkpoint's own value".

Parameter values come from a params file (`--params-file`), `-p name:=value` or a parameter
service call. A value that does not fit its descriptor does *not* abort the process: it is
recorded, the default is declared instead, and `on_configure` fails with the recorded message, so
a lifecycle manager (or the user) sees which parameter is wrong while the node stays up.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.parameter import Parameter

DEVICES = ("auto", "cpu", "cuda")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable", "auto")
#: Marks a numeric parameter as "take the value from the checkpoint's config".
FROM_CHECKPOINT = -1


class ParamError(ValueError):
    """A parameter value is out of its allowed range; the message names the parameter."""


@dataclass(frozen=True)
class Spec:
    """One parameter: default, meaning, allowed values, and whether it may change while active.

    live: True when the running node applies a change at once (thresholds, output switches);
    False when a change needs a reload (deactivate -> set -> activate), refused while active.
    """

    name: str
    default: Any
    description: str
    live: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    type_: Parameter.Type | None = None  # for parameters declared without a default (arrays)

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.range:
            lo, hi = self.range
            return f"in [{lo}, {hi}]"
        return f"a {self.ros_type().name.lower()}"

    def ros_type(self) -> Parameter.Type:
        if self.type_ is not None:
            return self.type_
        return Parameter.Type.from_parameter_value(self.default)

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description)
        extra = []
        if self.choices:
            extra.append("one of: " + ", ".join(self.choices))
        if not self.live:
            extra.append("needs a reload: refused while active")
        d.additional_constraints = "; ".join(extra)
        if self.range is not None:
            lo, hi = self.range
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            elif isinstance(self.default, float):
                d.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                             to_value=float(hi), step=0.0)]
        return d


_THR = "; -1 = the checkpoint's value"
SPECS: tuple[Spec, ...] = (
    Spec("autostart", True, "Configure and activate on start (no lifecycle manager needed)."),
    Spec("checkpoint", "", "Path of the stemseg checkpoint (.pt). A relative path is looked up "
         "in the working directory, then in the package share directory."),
    Spec("device", "auto", "Inference device: auto (cuda when available), cuda or cpu.",
         choices=DEVICES),
    Spec("clip_length", 0, "Frames per clip T; 0 = the checkpoint's value.", range=(0, 64)),
    Spec("clip_overlap", FROM_CHECKPOINT, "Frames shared by consecutive clips Tc (< T)" + _THR,
         range=(-1, 63)),
    Spec("input_width", 0, "Width the images are resized to before the model (results are "
         "mapped back to the camera's size); 0 = the checkpoint's / camera's size.",
         range=(0, 8192)),
    Spec("input_height", 0, "Height the images are resized to before the model; 0 = the "
         "checkpoint's / camera's size.", range=(0, 8192)),
    Spec("seediness_threshold", float(FROM_CHECKPOINT), "Stop clustering when the highest "
         "remaining seediness is below this; seeds of classes listed in the checkpoint's "
         "inference.seediness_threshold_per_class use their own value" + _THR, live=True,
         range=(-1.0, 1.0)),
    Spec("mask_threshold", float(FROM_CHECKPOINT), "A pixel joins an instance when its "
         "probability exceeds this" + _THR, live=True, range=(-1.0, 1.0)),
    Spec("foreground_threshold", float(FROM_CHECKPOINT), "Pixels are clustered only where the "
         "foreground probability exceeds this" + _THR, live=True, range=(-1.0, 1.0)),
    Spec("min_mask_area", FROM_CHECKPOINT, "Instance masks smaller than this many pixels are "
         "left out of a frame's output (they still link tracks); classes listed in the "
         "checkpoint's inference.min_mask_area_per_class use their own value" + _THR, live=True,
         range=(-1, 100_000_000)),
    Spec("flip_test", False, "Also run every clip mirrored left-right and average the two "
         "outputs (more accurate, twice the network time). The node follows this parameter, "
         "not the checkpoint's inference.flip_test (which `stemseg infer` uses)."),
    Spec("classes", None, "Keep only these class names (empty = all the model knows).",
         live=True, type_=Parameter.Type.STRING_ARRAY),
    Spec("input_transport", "raw", "raw: subscribe `image` (sensor_msgs/Image); compressed: "
         "subscribe `image/compressed` (sensor_msgs/CompressedImage, jpeg/png).",
         choices=TRANSPORTS),
    Spec("qos_reliability", "best_effort", "Input QoS reliability. best_effort matches camera "
         "drivers and `ros2 bag play`; auto matches the publishers found in the graph.",
         choices=RELIABILITIES),
    Spec("qos_depth", 5, "Input (and output) QoS history depth.", range=(1, 1000)),
    Spec("publish_overlay", True, "Publish ~/overlay (bgr8 image with masks, IDs and classes).",
         live=True),
    Spec("publish_track_ids", True, "Publish ~/track_ids (mono16, pixel = track ID, 0 = "
         "background).", live=True),
    Spec("max_queue_clips", 2, "Input queue bound in clips: at most max_queue_clips * (T - Tc) "
         "frames wait; beyond that the oldest frame is dropped and counted.", range=(1, 1000)),
    Spec("idle_flush_sec", 1.0, "Finalise a partial clip after this many seconds without "
         "frames; 0 = never.", live=True, range=(0.0, 3600.0)),
    Spec("gap_reset_sec", 5.0, "A gap between image stamps longer than this finalises the "
         "running clips and starts a new track sequence; 0 = never.", live=True,
         range=(0.0, 86400.0)),
    Spec("diagnostics_period_sec", 1.0, "Period of the /diagnostics status.",
         range=(0.1, 60.0)),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
THRESHOLDS = ("seediness_threshold", "mask_threshold", "foreground_threshold", "min_mask_area")


@dataclass(frozen=True)
class PerceptionParams:
    """The validated values of all parameters (see SPECS for their meaning)."""

    autostart: bool
    checkpoint: str
    device: str
    clip_length: int
    clip_overlap: int
    input_width: int
    input_height: int
    seediness_threshold: float
    mask_threshold: float
    foreground_threshold: float
    min_mask_area: int
    flip_test: bool
    classes: tuple[str, ...]
    input_transport: str
    qos_reliability: str
    qos_depth: int
    publish_overlay: bool
    publish_track_ids: bool
    max_queue_clips: int
    idle_flush_sec: float
    gap_reset_sec: float
    diagnostics_period_sec: float

    def replace(self, **changes: Any) -> PerceptionParams:
        return dataclasses.replace(self, **changes)

    def tracker_overrides(self) -> list[str]:
        """Config overrides (`key=value`) for StreamingTracker.from_checkpoint: flip_test always,
        the rest only when set (else as trained)."""
        out = [f"inference.flip_test={str(bool(self.flip_test)).lower()}"]
        if self.clip_length > 0:
            out.append(f"model.clip_length={self.clip_length}")
        if self.clip_overlap != FROM_CHECKPOINT:
            out.append(f"inference.clip_overlap={self.clip_overlap}")
        if self.classes:
            out.append("inference.classes=[" + ",".join(self.classes) + "]")
        return out

    def thresholds(self) -> dict[str, float | int]:
        """Threshold parameters that are set (not FROM_CHECKPOINT), by name."""
        out: dict[str, float | int] = {}
        for name in THRESHOLDS:
            v = getattr(self, name)
            if v != FROM_CHECKPOINT:
                out[name] = v
        return out


def declare(node: Any) -> dict[str, str]:
    """Declare every parameter of SPECS on `node`.

    Returns {name: message} for overrides (params file, -p) that did not fit their descriptor;
    those parameters get their default value, and `on_configure` reports the messages.
    """
    errors: dict[str, str] = {}
    for spec in SPECS:
        default = spec.ros_type() if spec.default is None else spec.default
        try:
            node.declare_parameter(spec.name, default, spec.descriptor())
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            bad = _override_value(node, spec.name)
            errors[spec.name] = bad_value_message(spec, bad, detail=str(e))
            node.declare_parameter(spec.name, default, spec.descriptor(), ignore_override=True)
    return errors


def _override_value(node: Any, name: str) -> Any:
    p = getattr(node, "_parameter_overrides", {}).get(name)
    return getattr(p, "value", "?")


def bad_value_message(spec: Spec, value: Any, detail: str = "") -> str:
    expected = spec.ros_type().name.lower().replace("_", " ")
    msg = (f"parameter '{spec.name}': invalid value {value!r} ({type(value).__name__}); expected "
           f"{expected} {spec.allowed()}")
    if spec.ros_type() == Parameter.Type.DOUBLE and isinstance(value, int):
        msg += f" (write {float(value)} for a double)"
    return msg


def read(node: Any) -> PerceptionParams:
    """Read all parameters from `node` and validate them (raises ParamError)."""
    values = {}
    for spec in SPECS:
        try:
            v = node.get_parameter(spec.name).value
        except ParameterUninitializedException:  # a typed array without a value: empty
            v = None
        if spec.name == "classes":
            v = tuple(c for c in (v or ()) if c)
        values[spec.name] = v
    p = PerceptionParams(**values)
    validate(p)
    return p


def check_value(name: str, value: Any) -> None:
    """Validate one parameter on its own (type, range, choices). Raises ParamError."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return
    if name == "classes":
        if value is not None and not all(isinstance(c, str) for c in value):
            raise ParamError(bad_value_message(spec, value))
        return
    if spec.choices and value not in spec.choices:
        raise ParamError(bad_value_message(spec, value))
    if spec.range is not None and not isinstance(value, bool):
        lo, hi = spec.range
        if not lo <= value <= hi:
            raise ParamError(bad_value_message(spec, value))
    if name in THRESHOLDS and value != FROM_CHECKPOINT and value < 0:
        raise ParamError(f"parameter '{name}': invalid value {value!r}; expected -1 (the "
                         f"checkpoint's value) or a value >= 0" +
                         (" and <= 1" if isinstance(value, float) else ""))
    if name == "clip_overlap" and value < FROM_CHECKPOINT:
        raise ParamError(bad_value_message(spec, value))


def validate(p: PerceptionParams) -> None:
    """Check every value and the relations between them. Raises ParamError naming the parameter."""
    for spec in SPECS:
        check_value(spec.name, getattr(p, spec.name))
    if not p.checkpoint:
        raise ParamError("parameter 'checkpoint': no checkpoint given; pass the path of a stemseg "
                         "checkpoint (.pt), e.g. -p checkpoint:=checkpoints/stemseg_demo.pt")
    if p.clip_length > 0 and p.clip_overlap != FROM_CHECKPOINT and p.clip_overlap >= p.clip_length:
        raise ParamError(f"parameter 'clip_overlap': {p.clip_overlap} must be smaller than "
                         f"clip_length={p.clip_length} (allowed 0..{p.clip_length - 1}, or -1)")
    if (p.input_width == 0) != (p.input_height == 0):
        raise ParamError(f"parameters 'input_width'/'input_height': set both or neither (got "
                         f"{p.input_width}x{p.input_height}; 0 = keep the size)")


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
