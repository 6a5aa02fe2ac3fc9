"""Configuration: dataclasses loaded from YAML, with `key=value` overrides and validation.

A config file mirrors :class:`Config`; any field left out keeps its default. Example::

    cfg = load_config("config/model/demo_cpu.yaml", ["train.max_steps=100", "model.clip_length=4"])

Every bad value raises :class:`ConfigError` naming the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MIXING_FUNCTIONS = ("xy", "xyt", "xyf", "xytf", "xyff", "xyfff")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_large",
             "mobilenet_v3_small")
DEVICES = ("auto", "cpu", "cuda")
#: Training data layouts (read by stemseg_core/data/sources.py).
DATA_FORMATS = ("auto", "kitti_mots", "davis", "youtube_vis")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message says which and why."""


@dataclass
class BackboneConfig:
    """Per-frame 2D backbone + FPN."""

    name: str = "resnet101"
    #: Local torchvision/COCO state-dict file to initialise the backbone from; None = from scratch.
    weights: str | None = None
    #: Number of leading stages frozen (0 = none, 1 = stem + stage 1 as the authors do).
    frozen_stages: int = 1
    #: Replace BatchNorm by FrozenBatchNorm2d (as detectron2/the authors).
    frozen_bn: bool = True
    fpn_channels: int = 256


@dataclass
class EmbeddingConfig:
    """Spatio-temporal embedding (paper sec. 3.3)."""

    #: One of MIXING_FUNCTIONS: which embedding dims hold fixed coordinates (x, y, t) or are
    #: free (f).
    mixing: str = "xyt"
    #: Fixed standard deviation of the free dims (v_free = free_dim_std ** 2).
    free_dim_std: float = 0.3
    #: The t coordinate spans [-time_scale, time_scale] over the clip.
    time_scale: float = 1.0

    @property
    def dims(self) -> int:
        """Embedding size E = number of letters in the mixing function."""
        return len(self.mixing)


@dataclass
class DecoderConfig:
    """Temporal Squeeze-Expand decoders (paper sec. 3.2)."""

    #: Channels of the decoder blocks at 1/32, 1/16, 1/8, 1/4 of the input.
    widths: list[int] = field(default_factory=lambda: [256, 256, 128, 128])
    groupnorm_groups: int = 32


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    #: Class names indexed by class id; index 0 is background. KITTI MOTS: 1 car, 2 pedestrian.
    class_names: list[str] = field(default_factory=lambda: ["background", "car", "pedestrian"])
    #: Optional semantic decoder (class logits per pixel, background included).
    semantic_head: bool = True
    #: Clip length T (frames per forward pass).
    clip_length: int = 8
    #: Output resolution, as the input stride of the output maps: 4 = the paper (TSE decoder
    #: output); 2 = a stride-2 refinement guided by the backbone stem (model/refine.py), for
    #: small images whose thin objects are only a few pixels wide at 1/4.
    output_stride: int = 4
    #: Input normalisation: the model takes RGB uint8-valued floats and normalises inside.
    pixel_mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    pixel_std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class LossConfig:
    """Weights of the training losses (authors' values as defaults)."""

    embedding: float = 1.0
    smoothness: float = 10.0
    seediness: float = 1.0
    semantic: float = 1.0
    #: Per-class weights of the semantic cross-entropy, one per class name (background first);
    #: empty = unweighted (the authors'). Lifts rare thin classes (pedestrians) over background.
    semantic_class_weights: list[float] = field(default_factory=list)
    #: Seediness MSE weighting of small instances (not in the paper; 0 = off, the paper's plain
    #: mean over pixels). With A > 0, the pixels of an instance covering n < A output pixels of the
    #: clip weigh A / n, so a small distant pedestrian counts like an instance of A pixels.
    seediness_small_instance_area: float = 0.0


@dataclass
class InputConfig:
    """Resizing of camera images before the model (aspect kept, padded to a multiple of 32)."""

    #: Target size of the shorter / longer side; 0 = keep the image's own size.
    min_side: int = 0
    max_side: int = 0


@dataclass
class InferenceConfig:
    #: Frames shared by consecutive clips (Tc); a clip starts every clip_length - clip_overlap
    #: frames.
    clip_overlap: int = 4
    #: Stop clustering when the highest remaining seediness is below this (MIN_SEEDINESS_PROB).
    seediness_threshold: float = 0.5
    #: Per-class overrides of seediness_threshold, by class name (e.g. {pedestrian: 0.5}): a seed
    #: whose most likely class is listed needs this seediness instead. Needs the semantic head.
    seediness_threshold_per_class: dict[str, float] = field(default_factory=dict)
    #: Pixels are clustered only where foreground probability exceeds this.
    foreground_threshold: float = 0.5
    #: A pixel joins an instance when its probability p_ij exceeds this.
    mask_threshold: float = 0.5
    max_instances: int = 20
    #: After a seed's mask is found, re-centre its Gaussian on the mask's mean embedding and
    #: precision and recompute the mask, this many times (0 = the paper: the seed pixel's values).
    center_refinement_steps: int = 0
    #: Instances smaller than this many pixels (per frame, at input resolution) are dropped.
    min_mask_area: int = 0
    #: Per-class overrides of min_mask_area, by class name (e.g. {pedestrian: 80}); classes not
    #: listed use min_mask_area (which stays a live threshold for them).
    min_mask_area_per_class: dict[str, int] = field(default_factory=dict)
    #: Offline only (`stemseg infer`, when --min-track-length is not given): drop tracks seen in
    #: fewer frames (0 = keep all). The streaming node cannot know a track's final length when
    #: it publishes a frame, so it ignores this.
    min_track_length: int = 0
    #: Minimum mask IoU over the shared frames for two clip instances to be linked.
    stitch_min_iou: float = 0.1
    #: Not in the paper (0 = off): a track missed for up to this many frames gets its ID back
    #: when an unlinked instance of its class appears near where its box was heading (see
    #: inference/stitching.py).
    relink_max_gap: int = 0
    #: Re-linking radius: centre distance to the track's predicted box centre, in units of
    #: sqrt(track box area).
    relink_max_distance: float = 1.0
    #: Class names re-linking applies to (empty = all).
    relink_classes: list[str] = field(default_factory=list)
    #: Not in the paper: also run each clip mirrored left-right and average the two outputs
    #: (inference/flip_test.py). Doubles the network's time. The ROS node ignores this and
    #: follows its own flip_test parameter (default off, for frame rate).
    flip_test: bool = False
    #: Not in the paper (0 = off): refine each output mask with a colour-guided filter of this
    #: radius in pixels, so that its border follows the image's edges
    #: (inference/mask_refinement.py).
    mask_refinement_radius: int = 0
    #: Per-class overrides of mask_refinement_radius, by class name (e.g. {pedestrian: 5});
    #: used only while mask_refinement_radius > 0 (which turns refinement on).
    mask_refinement_radius_per_class: dict[str, int] = field(default_factory=dict)
    #: The guided filter's ridge term (on RGB in [0, 1]): smaller follows weaker edges.
    mask_refinement_eps: float = 1.0e-3
    #: Class names whose masks are refined (empty = all).
    mask_refinement_classes: list[str] = field(default_factory=list)
    #: Keep only these class names (empty = all).
    classes: list[str] = field(default_factory=list)
    device: str = "auto"


@dataclass
class DataConfig:
    #: Layout of the training data: auto (recognised from the folder), kitti_mots, davis or
    #: youtube_vis (see stemseg_core/data/sources.py).
    format: str = "auto"
    #: Training image size (height, width); both multiples of 32.
    height: int = 384
    width: int = 1248
    #: Maximum frame gap between sampled clip frames (1 = consecutive).
    max_frame_stride: int = 1
    horizontal_flip: bool = True
    #: Fraction of training clips made from one image by independent per-frame augmentation.
    image_augmented_fraction: float = 0.0
    #: Not in the paper: per-clip zoom factor drawn uniformly from [low, high] ([1, 1] = off).
    #: Above 1 the frames are enlarged and a random height x width window is kept, below 1 they
    #: are shrunk onto a random place of the canvas (the rest is ignore), same for all frames.
    scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    #: Not in the paper (0 = off): clips are drawn more often where small instances of
    #: ``oversample_class`` are. A clip starting at a frame with k instances of that class under
    #: ``oversample_max_area`` pixels (at the training size) is drawn 1 + weight * k times as
    #: often as one with none (data/oversample.py).
    oversample_weight: float = 0.0
    oversample_class: str = "pedestrian"
    oversample_max_area: int = 100
    num_workers: int = 2


@dataclass
class TrainConfig:
    batch_size: int = 2
    max_steps: int = 40000
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    #: Constant LR until this step, then exponential decay reaching lr * lr_decay_factor at the
    #: end.
    lr_decay_start: int = 20000
    lr_decay_factor: float = 0.1
    grad_clip: float = 10.0
    amp: bool = True
    checkpoint_every: int = 1000
    log_every: int = 20
    image_log_every: int = 500
    seed: int = 42


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Loading, overrides, validation


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field type `tp`, or raise ConfigError naming `key`."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: null is not allowed (expected {getattr(tp, '__name__', tp)})")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, key)
    origin = typing.get_origin(tp)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping like {{name: value}}, got {value!r}")
        return {_coerce(k, key_tp, f"{key} (a key)"): _coerce(v, val_tp, f"{key}.{k}")
                for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else (
                [v.strip() for v in value.split(",") if v.strip()])
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{key}'.{hint} "
                              f"Allowed here: {', '.join(names)}")
        kwargs[k] = _coerce(v, hints[k], key)
    return cls(**kwargs)


def _apply_override(data: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override '{override}' must look like key.sub=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{override}': '{p}' is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def config_from_dict(data: dict[str, Any] | None, overrides: list[str] | None = None) -> Config:
    """Build and validate a :class:`Config` from a (partial) nested dict plus overrides."""
    data = _deep_copy(data or {})
    for o in overrides or []:
        _apply_override(data, o)
    cfg = _build(Config, data)
    validate(cfg)
    return cfg


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file (None = all defaults), apply `key=value` overrides, validate."""
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


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_class_names(key: str, names: Iterable[str], m: ModelConfig) -> None:
    """Every name must be one of the model's object classes (not "background")."""
    unknown = [c for c in names if c not in m.class_names[1:]]
    _check(not unknown, f"{key}: unknown class(es) {unknown}; the model knows "
                        f"{m.class_names[1:]}")


OUTPUT_STRIDES = (4, 2)


def validate(cfg: Config) -> None:
    """Raise ConfigError on the first value outside its allowed range."""
    m = cfg.model
    _check(m.backbone.name in BACKBONES,
           f"model.backbone.name: '{m.backbone.name}' is not supported; "
           f"allowed: {', '.join(BACKBONES)}")
    _check(m.embedding.mixing in MIXING_FUNCTIONS,
           f"model.embedding.mixing: '{m.embedding.mixing}' is not a mixing function; allowed: "
           f"{', '.join(MIXING_FUNCTIONS)}")
    _check(m.embedding.free_dim_std > 0, "model.embedding.free_dim_std must be > 0")
    _check(m.embedding.time_scale > 0, "model.embedding.time_scale must be > 0")
    _check(0 <= m.backbone.frozen_stages <= 5, "model.backbone.frozen_stages must be in 0..5")
    _check(len(m.decoder.widths) == 4,
           f"model.decoder.widths: need 4 widths (1/32, 1/16, 1/8, 1/4), got {m.decoder.widths}")
    for w in m.decoder.widths:
        _check(w > 0 and w % m.decoder.groupnorm_groups == 0,
               f"model.decoder.widths: {w} must be a positive multiple of "
               f"groupnorm_groups={m.decoder.groupnorm_groups}")
    _check(len(m.class_names) >= 2 and m.class_names[0] == "background",
           f"model.class_names must start with 'background' and name at least one class, "
           f"got {m.class_names}")
    _check(len(set(m.class_names)) == len(m.class_names),
           f"model.class_names has duplicates: {m.class_names}")
    _check(m.clip_length >= 1, f"model.clip_length must be >= 1, got {m.clip_length}")
    _check(m.output_stride in OUTPUT_STRIDES,
           f"model.output_stride must be one of {OUTPUT_STRIDES} (4 = the paper's decoder "
           f"output, 2 = with the stride-2 refinement), got {m.output_stride}")
    _check(len(m.pixel_mean) == 3 and len(m.pixel_std) == 3 and all(s > 0 for s in m.pixel_std),
           "model.pixel_mean/pixel_std need 3 values each (RGB), std > 0")
    _check(cfg.loss.seediness_small_instance_area >= 0,
           f"loss.seediness_small_instance_area must be >= 0 (0 = off), got "
           f"{cfg.loss.seediness_small_instance_area}")
    cw = cfg.loss.semantic_class_weights
    _check(not cw or (len(cw) == m.num_classes and all(x > 0 for x in cw)),
           f"loss.semantic_class_weights: need {m.num_classes} positive weights (one per class "
           f"in model.class_names) or [], got {cw}")
    sr = cfg.data.scale_range
    _check(len(sr) == 2 and 0 < sr[0] <= sr[1],
           f"data.scale_range must be [low, high] with 0 < low <= high ([1, 1] = off), got {sr}")
    i = cfg.inference
    _check(0 <= i.clip_overlap < m.clip_length,
           f"inference.clip_overlap must be in 0..clip_length-1 = 0..{m.clip_length - 1}, "
           f"got {i.clip_overlap}")
    for name in ("seediness_threshold", "foreground_threshold", "mask_threshold",
                 "stitch_min_iou"):
        v = getattr(i, name)
        _check(0.0 <= v <= 1.0, f"inference.{name} must be in [0, 1], got {v}")
    _check(i.max_instances >= 1, f"inference.max_instances must be >= 1, got {i.max_instances}")
    _check(i.center_refinement_steps >= 0, f"inference.center_refinement_steps must be >= 0 "
                                           f"(0 = off), got {i.center_refinement_steps}")
    _check(i.min_mask_area >= 0, f"inference.min_mask_area must be >= 0, got {i.min_mask_area}")
    _check_class_names("inference.min_mask_area_per_class", i.min_mask_area_per_class, m)
    negative = {c: v for c, v in i.min_mask_area_per_class.items() if v < 0}
    _check(not negative, f"inference.min_mask_area_per_class: areas must be >= 0, got {negative}")
    _check_class_names("inference.seediness_threshold_per_class",
                       i.seediness_threshold_per_class, m)
    outside = {c: v for c, v in i.seediness_threshold_per_class.items() if not 0.0 <= v <= 1.0}
    _check(not outside, f"inference.seediness_threshold_per_class: thresholds must be in [0, 1], "
                        f"got {outside}")
    _check(not i.seediness_threshold_per_class or m.semantic_head,
           "inference.seediness_threshold_per_class needs model.semantic_head: true (the class "
           "of a seed pixel comes from the semantic head); use seediness_threshold instead")
    _check(i.relink_max_gap >= 0, f"inference.relink_max_gap must be >= 0 frames (0 = off), "
                                  f"got {i.relink_max_gap}")
    _check(i.relink_max_distance >= 0, f"inference.relink_max_distance must be >= 0 (in track "
                                       f"box sizes), got {i.relink_max_distance}")
    _check(i.min_track_length >= 0, f"inference.min_track_length must be >= 0 (0 = off), got "
                                    f"{i.min_track_length}")
    _check_class_names("inference.classes", i.classes, m)
    _check_class_names("inference.relink_classes", i.relink_classes, m)
    _check(i.mask_refinement_radius >= 0, f"inference.mask_refinement_radius must be >= 0 "
                                          f"pixels (0 = off), got {i.mask_refinement_radius}")
    _check_class_names("inference.mask_refinement_radius_per_class",
                       i.mask_refinement_radius_per_class, m)
    bad_r = {c: v for c, v in i.mask_refinement_radius_per_class.items() if v < 1}
    _check(not bad_r, f"inference.mask_refinement_radius_per_class: radii must be >= 1 pixel "
                      f"(leave a class out to use mask_refinement_radius), got {bad_r}")
    _check(i.mask_refinement_eps > 0, f"inference.mask_refinement_eps must be > 0 (e.g. 1e-3), "
                                      f"got {i.mask_refinement_eps}")
    _check_class_names("inference.mask_refinement_classes", i.mask_refinement_classes, m)
    _check(i.device in DEVICES, f"inference.device: '{i.device}' not one of {', '.join(DEVICES)}")
    d = cfg.data
    _check(d.height > 0 and d.height % 32 == 0 and d.width > 0 and d.width % 32 == 0,
           f"data.height/width must be positive multiples of 32, got {d.height}x{d.width}")
    _check(d.max_frame_stride >= 1, "data.max_frame_stride must be >= 1")
    _check(d.format in DATA_FORMATS, f"data.format: '{d.format}' is not a data layout; allowed: "
                                     f"{', '.join(DATA_FORMATS)}")
    _check(0.0 <= d.image_augmented_fraction <= 1.0, "data.image_augmented_fraction in [0, 1]")
    _check(d.oversample_weight >= 0, f"data.oversample_weight must be >= 0 (0 = off), got "
                                     f"{d.oversample_weight}")
    _check(d.oversample_max_area >= 1, f"data.oversample_max_area must be >= 1 pixel, got "
                                       f"{d.oversample_max_area}")
    if d.oversample_weight > 0:
        _check_class_names("data.oversample_class", [d.oversample_class], m)
    t = cfg.train
    _check(t.batch_size >= 1 and t.max_steps >= 1, "train.batch_size and train.max_steps >= 1")
    _check(t.lr > 0, f"train.lr must be > 0, got {t.lr}")
    _check(0 < t.lr_decay_factor <= 1, "train.lr_decay_factor must be in (0, 1]")
    _check(t.lr_decay_start >= 0, "train.lr_decay_start must be >= 0")
    _check(t.checkpoint_every >= 1 and t.log_every >= 1, "train.*_every must be >= 1")
    _check(cfg.input.min_side >= 0 and cfg.input.max_side >= 0, "input.min_side/max_side >= 0")


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without a GPU raises ConfigError."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"device '{name}' not one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available; "
                          f"use 'cpu' or 'auto'")
    return name
