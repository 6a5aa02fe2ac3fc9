"""Parameters of the perception node: declared once here (default, range, description, live).

``config/perception.yaml`` holds exactly these defaults (a test checks it), and ``ros2 param
describe`` shows the same descriptions and ranges. Threshold parameters are generated from the
core's ``LIVE_THRESHOLDS`` (names, kinds and ranges declared once, next to the config schema);
for them ``-1`` (numbers) or ``""`` (per-class maps) means "the checkpoint's value".

Values come from a params file, ``-p name:=value`` or a parameter service call. A value that does
not fit does *not* abort the process: it is recorded, the default is declared instead, and
``on_configure`` fails with the recorded message, so the node stays up to be fixed. Integers are
accepted for float parameters (``seediness_threshold:=1``).

Any process on the DDS domain can call the parameter services, so (issue 35): trust switches and
limits are ``read_only`` (set at start only, from the launch or params file); what chooses the
model (:data:`MODEL_CHOICE`) changes at run time only with ``allow_remote_model_change: true``
given at start; :func:`check_changes` refuses everything else that does not fit, and messages
quote at most a short prefix of a value (:func:`short`). String parameters reach the core's
config overrides quoted, never re-read as YAML (:func:`tracker_overrides`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.parameter import Parameter

from stemseg_core.config import LIVE_THRESHOLDS, ThresholdSpec, parse_flat_mapping
from stemseg_core.config import short_repr as short
from stemseg_ros.worker import DEFAULT_IDLE_FLUSH_SEC

DEVICES = ("auto", "cpu", "cuda")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable", "auto")
#: Marks a numeric threshold parameter as "take the value from the checkpoint's config".
FROM_CHECKPOINT = -1
DEFAULT_CHECKPOINT = "checkpoints/stemseg_demo.pt"
_NO_UPPER = 100_000_000  # integer ranges need an upper bound
#: Default of max_image_pixels: DCI 4K (4096x2160), which also covers UHD (3840x2160) and every
#: smaller camera; an RGB copy of it is 27 MB, the model's float copy 106 MB.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 2160
#: Most max_image_pixels may be set to: 8K UHD (7680x4320; RGB 100 MB, float copy 400 MB).
MAX_IMAGE_PIXELS_LIMIT = 7680 * 4320


class ParamError(ValueError):
    """A parameter value is not allowed; the message names the parameter, value and the fix."""


@dataclass(frozen=True)
class Spec:
    """One parameter. kind: bool, int, float, str or list (of str / int).

    live: True when the running node applies a change at once (thresholds, output switches);
    False when it needs a reload (deactivate, set, activate): refused while active.
    read_only: set at start only (launch or params file); every later set is refused (trust
    switches and limits, which any process on the DDS domain could otherwise change).
    """

    name: str
    default: Any
    description: str
    live: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    item: type | None = None  # element type of a list parameter
    read_only: bool = False

    @property
    def kind(self) -> type:
        return list if self.item is not None else type(self.default)

    def ros_type(self) -> Parameter.Type:
        if self.item is not None:
            return {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY}.get(
                self.item, Parameter.Type.INTEGER_ARRAY)
        return Parameter.Type.from_parameter_value(self.default)

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.range:
            return f"{self.kind.__name__} in [{self.range[0]}, {self.range[1]}]"
        if self.item is not None:
            return f"list of {self.item.__name__}"
        return self.kind.__name__

    def changes(self) -> str:
        """When a new value takes effect, in words."""
        if self.read_only:
            return "set at start only (launch or params file)"
        return "changes at once" if self.live else "needs a reload: refused while active"

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description,
                                read_only=self.read_only)
        extra = []
        if self.choices:
            extra.append("one of: " + ", ".join(self.choices))
        extra.append(self.changes())
        d.additional_constraints = "; ".join(extra)
        if self.kind is float:
            d.dynamic_typing = True  # integers accepted, converted (see coerce)
            if self.range is not None:
                d.floating_point_range = [FloatingPointRange(
                    from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)]
        elif self.kind is int and self.range is not None:
            d.integer_range = [IntegerRange(from_value=int(self.range[0]),
                                            to_value=int(self.range[1]), step=1)]
        return d


def _threshold_spec(t: ThresholdSpec) -> Spec:
    """A node parameter for one of the core's live thresholds."""
    if t.kind is list:
        return Spec(t.name, [], t.description + " [] = the checkpoint's inference.classes "
                    "(usually all).", live=True, item=str)
    if t.per_class:
        return Spec(t.name, "", t.description + ' As a map, e.g. "{car: 0.8, pedestrian: 0.85}";'
                    ' "" = the checkpoint\'s; "{}" = none.', live=True)
    lo = FROM_CHECKPOINT if t.low is None or t.low >= FROM_CHECKPOINT else t.low
    hi = t.high if t.high is not None else _NO_UPPER
    return Spec(t.name, t.kind(FROM_CHECKPOINT), t.description + " -1 = the checkpoint's value.",
                live=True, range=(t.kind(lo), t.kind(hi)))


THRESHOLD_SPECS: tuple[Spec, ...] = tuple(_threshold_spec(t) for t in LIVE_THRESHOLDS)
THRESHOLDS: tuple[str, ...] = tuple(s.name for s in THRESHOLD_SPECS)

SPECS: tuple[Spec, ...] = (
    Spec("autostart", True, "Configure and activate on start (no lifecycle manager needed)."),
    Spec("checkpoint", DEFAULT_CHECKPOINT, "Path of the stemseg checkpoint (.pt). A relative "
         "path is looked up in the working directory, then in the package share directory."),
    Spec("allow_pickle", False, "Load checkpoints that need Python pickle (only for files you "
         "trust: unpickling runs code).", read_only=True),
    Spec("checkpoint_sha256", "", "Expected SHA-256 of the checkpoint file, checked at every "
         "load; \"\" = any.", read_only=True),
    Spec("allow_remote_model_change", False, "Let parameter calls change checkpoint, backend "
         "and engine_cache_dir after start (any process on the DDS domain can make them); "
         "false: those are set at start only.", read_only=True),
    Spec("device", "auto", "Inference device: auto (cuda when available), cuda or cpu.",
         choices=DEVICES),
    Spec("backend", "", "Inference backend (auto, torch, onnxruntime, openvino, tensorrt); "
         "\"\" = the device's deployment default (CPU: openvino bf16, CUDA: torch fp32; "
         "stemseg_core.backends.DEPLOYMENT_DEFAULTS), or torch fp32 if that is not installed."),
    Spec("precision", "", "Inference precision (fp32, bf16, fp16, int8); \"\" = the "
         "deployment default's with backend \"\", else the checkpoint's inference.precision."),
    Spec("engine_cache_dir", "", "Where built backend engines are cached; \"\" = the default "
         "under the user's cache directory."),
    Spec("num_threads", 0, "CPU threads of the backend; 0 = the library default.",
         range=(0, 1024)),
    Spec("clip_length", 0, "Frames per clip T; 0 = the checkpoint's value.", range=(0, 64)),
    Spec("clip_overlap", FROM_CHECKPOINT, "Frames shared by consecutive clips Tc (< T); -1 = "
         "the checkpoint's value.", range=(-1, 63)),
    Spec("input_roi", [], "Region [x, y, width, height] of the camera image given to the model "
         "(results are mapped back to the full image); [] = the whole image.", item=int),
    Spec("input_width", 0, "Width the model input is scaled to fit (aspect kept; results are "
         "mapped back); 0 = the checkpoint's input.min_side/max_side.", range=(0, 8192)),
    Spec("input_height", 0, "Height the model input is scaled to fit; 0 = as input_width.",
         range=(0, 8192)),
    Spec("expected_input_size", "", "Size WIDTHxHEIGHT (e.g. 1280x720) of the camera's "
         "images, whose engines activate builds when no camera_info (the image topic's sibling) "
         "answers; \"\" = camera_info, else the first frame (the node then warms up for its "
         "size and says so in the log and /diagnostics)."),
    *THRESHOLD_SPECS,
    Spec("flip_test", False, "Also run every clip mirrored left-right and average the two "
         "outputs (more accurate, twice the network time). The node follows this parameter, "
         "not the checkpoint's inference.flip_test (which `stemseg infer` uses)."),
    Spec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS, "Largest input image (width x height) "
         "accepted; a larger frame is dropped before it is decoded (compressed: by its header), "
         "counted (frames_too_large in /diagnostics) and logged. Default 4096x2160 (DCI 4K, "
         "covers UHD).", range=(1, MAX_IMAGE_PIXELS_LIMIT), read_only=True),
    Spec("input_transport", "raw", "raw: subscribe `image` (sensor_msgs/Image); compressed: "
         "subscribe `<image>/compressed` (sensor_msgs/CompressedImage, jpeg/png), following "
         "the remap of `image`.", choices=TRANSPORTS),
    Spec("qos_reliability", "best_effort", "Input QoS reliability. best_effort matches camera "
         "drivers and `ros2 bag play`; auto matches the publishers found in the graph.",
         choices=RELIABILITIES),
    Spec("qos_depth", 10, "Input (and output) QoS history depth: images that may wait for "
         "the callback (a busy CPU needs more).", range=(1, 1000)),
    Spec("max_input_rate", 0.0, "Most input frames per second given to the model; frames "
         "beyond it are skipped evenly (by stamp), which keeps track IDs linked where a full "
         "queue would drop bursts. 0 = auto (every frame while the model keeps up; 0.8 x its "
         "measured rate while it is behind), -1 = never skip.",
         live=True, range=(-1.0, 1000.0)),
    Spec("publish_overlay", True, "Publish ~/overlay (bgr8 image with masks, IDs and classes; "
         "drawn on its own thread, only while somebody subscribes).", live=True),
    Spec("publish_track_ids", True, "Publish ~/track_ids (32SC1, pixel = track ID, 0 = "
         "background; only while somebody subscribes).", live=True),
    Spec("max_queue_clips", 2, "Input queue bound in clips: at most max_queue_clips * (T - Tc) "
         "frames wait; beyond that the oldest frame is dropped and counted.", range=(1, 1000)),
    Spec("idle_flush_sec", DEFAULT_IDLE_FLUSH_SEC, "Finalise a partial clip, and give the "
         "memory of the clip buffers back, after this many seconds without frames; 0 = never.",
         live=True, range=(0.0, 3600.0)),
    Spec("gap_reset_sec", 5.0, "A gap between the stamps of incoming images longer than this "
         "finalises the running clips and starts a new track sequence (frames the node skipped "
         "or dropped do not count); 0 = never.", live=True, range=(0.0, 86400.0)),
    Spec("diagnostics_period_sec", 1.0, "Period of the /diagnostics status.",
         range=(0.1, 60.0)),
    Spec("use_depth", False, "3-D per instance from a depth image registered to the colour "
         "image: subscribe `depth` (sensor_msgs/Image 16UC1 mm or 32FC1 m; default "
         "`<image ns>/depth/image_raw`) and `camera_info` (K; default `<image ns>/camera_info`)."),
    Spec("use_lidar", False, "3-D per instance from LiDAR: subscribe `points` "
         "(sensor_msgs/PointCloud2 with float32 x y z) and `camera_info`; the LiDAR-to-camera "
         "transform from lidar_to_camera or calib_file. use_depth wins where both pair."),
    Spec("lidar_to_camera", [], "LiDAR -> optical frame of the camera that K describes (KITTI: "
         "rectified camera 2, R_rect and P2's baseline offset included), 16 numbers row-major "
         "(4x4) or 12 (3x4); [] = composed from calib_file.", item=float),
    Spec("calib_file", "", "KITTI calibration: a tracking calib file (P2, R_rect, Tr_velo_cam) "
         "or a raw date folder / its calib_cam_to_cam.txt (+ calib_velo_to_cam.txt). Gives the "
         "LiDAR transform [I|K^-1 P2[:,3]] R_rect Tr when lidar_to_camera is [], and K until "
         "camera_info arrives; \"\" = none."),
    Spec("sync_tolerance_sec", 0.05, "Largest stamp difference between an image and its depth "
         "image or LiDAR scan; a frame without a partner within it is answered without 3-D.",
         range=(0.0, 10.0)),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
#: Parameters that choose which model runs: set at start only unless allow_remote_model_change.
MODEL_CHOICE = ("checkpoint", "backend", "engine_cache_dir")
#: Parameters that decide how the model is loaded (refused while active, like every non-live).
LOADING = ("checkpoint", "allow_pickle", "checkpoint_sha256", "device", "backend", "precision",
           "engine_cache_dir", "num_threads", "clip_length", "clip_overlap", "input_width",
           "input_height", "flip_test")

PerceptionParams = dataclasses.make_dataclass(
    "PerceptionParams", [(s.name, Any) for s in SPECS], frozen=True,
    namespace={"__doc__": "The validated values of all parameters (see SPECS for each).",
               "replace": lambda self, **kw: dataclasses.replace(self, **kw)})


def defaults() -> dict[str, Any]:
    """{name: default} of every parameter (what config/perception.yaml holds)."""
    return {s.name: (list(s.default) if isinstance(s.default, list) else s.default)
            for s in SPECS}


# ----------------------------------------------------------------------------------------------
# Declaring and reading


def declare(node: Any) -> dict[str, str]:
    """Declare every parameter of SPECS on `node`; call before adding other parameter callbacks.

    Returns {name: message} for overrides that did not fit; those get their default value, and
    `on_configure` reports the messages. Also installs :func:`coerce` as a pre-set callback.
    """
    errors: dict[str, str] = {}
    for spec in SPECS:
        default = spec.ros_type() if spec.item is not None else spec.default
        try:
            node.declare_parameter(spec.name, default, spec.descriptor())
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            errors[spec.name] = (f"parameter '{spec.name}': the value given was refused ({e}); "
                                 f"expected {spec.allowed()}")
            node.declare_parameter(spec.name, default, spec.descriptor(), ignore_override=True)
        if spec.item is not None and not _is_set(node, spec.name):
            # an array declared by type has no value until set: give it its (empty) default
            node.set_parameters([Parameter(spec.name, spec.ros_type(), list(spec.default))])
    node.add_pre_set_parameters_callback(coerce)
    ints = [Parameter(s.name, Parameter.Type.DOUBLE, float(node.get_parameter(s.name).value))
            for s in SPECS if s.kind is float
            and type(node.get_parameter(s.name).value) is int]
    if ints:
        node.set_parameters(ints)
    return errors


def _is_set(node: Any, name: str) -> bool:
    try:
        node.get_parameter(name).value  # noqa: B018 - raises when uninitialised
        return True
    except ParameterUninitializedException:
        return False


def coerce(parameters: list[Parameter]) -> list[Parameter]:
    """Pre-set callback: integers given for float parameters become floats."""
    out = []
    for p in parameters:
        spec = SPEC_BY_NAME.get(p.name)
        if spec is not None and spec.kind is float and type(p.value) is int:
            p = Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
        out.append(p)
    return out


def read(node: Any) -> Any:
    """Read all parameters from `node` and validate them (raises ParamError)."""
    values = {}
    for spec in SPECS:
        try:
            v = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            v = []
        values[spec.name] = normalise(spec.name, v)
    p = PerceptionParams(**values)
    validate(p)
    return p


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


# ----------------------------------------------------------------------------------------------
# Validation


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


def validate(p: Any) -> None:
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
    if p.clip_length > 0 and p.clip_overlap != FROM_CHECKPOINT and p.clip_overlap >= p.clip_length:
        raise ParamError(f"parameter 'clip_overlap': {p.clip_overlap} must be smaller than "
                         f"clip_length={p.clip_length} (allowed 0..{p.clip_length - 1}, or -1)")


def tracker_overrides(p: Any, device: str = "cpu") -> list[str]:
    """Config overrides (`key=value`) for StreamingTracker.from_checkpoint on ``device`` (cpu or
    cuda): flip_test always, backend and precision the device's deployment default when both
    are "", the rest only when set (else as trained)."""
    out = [f"inference.flip_test={str(bool(p.flip_test)).lower()}"]
    if p.clip_length > 0:
        out.append(f"model.clip_length={p.clip_length}")
    if p.clip_overlap != FROM_CHECKPOINT:
        out.append(f"inference.clip_overlap={p.clip_overlap}")
    if p.input_width or p.input_height:
        w, h = p.input_width or p.input_height, p.input_height or p.input_width
        out += [f"input.min_side={min(w, h)}", f"input.max_side={max(w, h)}"]
    backend, precision = p.backend, p.precision
    if not backend and not precision:
        import torch

        from stemseg_core.backends import deployment_default

        backend, precision = deployment_default(torch.device(device))
    for key, value in (("backend", backend), ("precision", precision),
                       ("engine_cache_dir", p.engine_cache_dir)):
        if value:
            out.append(f"inference.{key}={quoted(value)}")
    if p.num_threads:
        out.append(f"inference.num_threads={p.num_threads}")
    return out


def quoted(value: str) -> str:
    """`value` as the core's override parser (YAML) reads back exactly: a plain string stays a
    string (``yes`` is not True, ``/tmp/x # c`` keeps its ``# c``), quoted when it has to be."""
    text = yaml.safe_dump(value, default_style=None, width=float("inf"), allow_unicode=False)
    text = text.removesuffix("\n").removesuffix("\n...")
    return text if yaml.safe_load(text) == value else yaml.safe_dump(
        value, default_style='"', width=float("inf")).rstrip("\n")


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


def markdown_table() -> str:
    """The parameter table of docs/node.md, generated from SPECS (a test keeps the page equal)."""
    rows = ["| parameter | default | allowed | changes | meaning |", "|---|---|---|---|---|"]
    for s in SPECS:
        default = "[]" if s.default == [] else ('""' if s.default == "" else str(s.default))
        changes = "start" if s.read_only else "live" if s.live else "reload"
        rows.append(f"| `{s.name}` | `{default}` | {s.allowed()} | "
                    f"{changes} | {s.description.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
