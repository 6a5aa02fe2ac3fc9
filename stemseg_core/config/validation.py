"""Validation of a :class:`Config` (ranges, choices, relations between fields) and of live
threshold values (:func:`check_live_threshold`, used by config validation and by
``StreamingTracker.set_thresholds``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from stemseg_core.config.coerce import coerce, short_repr
from stemseg_core.config.schema import (
    CHANNEL_ORDERS,
    CHROMA_LOWPASS_FACTORS,
    CLASS_VOTES,
    DEVICES,
    LIVE_THRESHOLD_BY_NAME,
    LIVE_THRESHOLDS,
    OUTPUT_STRIDES,
    POOLED_SLOTS,
    PRECISIONS,
    Config,
)
from stemseg_core.errors import ConfigError
from stemseg_core.registry import (
    ARCHITECTURES,
    BACKBONES,
    BACKENDS,
    CAMERA_EFFECTS,
    DATASET_FORMATS,
    MIXING_FUNCTIONS,
    Registry,
)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _check_class_names(key: str, names: Iterable[str], class_names: Sequence[str]) -> None:
    """Every name must be one of the model's object classes (not "background")."""
    unknown = [c for c in names if c not in class_names[1:]]
    _check(not unknown, f"{key}: unknown class(es) {unknown}; the model knows "
                        f"{list(class_names[1:])}")


def _in_range(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def check_live_threshold(name: str, value: Any, class_names: Sequence[str], *,
                         semantic_head: bool = True, key: str | None = None) -> Any:
    """Check one live threshold (a name of :data:`LIVE_THRESHOLDS`) and return it converted to
    its kind: float (integers accepted), int, a list of class names (a "car,pedestrian" string
    accepted) or a {class name: value} dict (a "{pedestrian: 0.5}" string accepted).

    ``class_names`` are the model's, background first. Raises ConfigError naming ``key``
    (default: the threshold's name), the value and what is allowed.
    """
    spec = LIVE_THRESHOLD_BY_NAME.get(name)
    if spec is None:
        raise ConfigError(f"unknown threshold '{name}'; allowed: "
                          f"{', '.join(s.name for s in LIVE_THRESHOLDS)}")
    key = key or name
    if spec.kind is list:
        names = coerce(value, list[str], key)
        _check_class_names(key, names, class_names)
        return names
    if spec.per_class:
        by_class = coerce(value, dict[str, spec.kind], key)
        _check_class_names(key, by_class, class_names)
        outside = {c: v for c, v in by_class.items() if not _in_range(v, spec.low, spec.high)}
        _check(not outside, f"{key}: values must be {spec.allowed()}, got {outside}")
        _check(not by_class or semantic_head or name != "seediness_threshold_per_class",
               f"{key} needs model.semantic_head: true (the class of a seed pixel comes from "
               f"the semantic head); use seediness_threshold instead")
        return by_class
    v = coerce(value, spec.kind, key)
    _check(_in_range(v, spec.low, spec.high),
           f"{key} must be {spec.allowed()}, got {short_repr(value)}")
    return v


def _check_registered(registry: Registry, value: str, auto: bool = False) -> None:
    """``value`` names a registered implementation (or is "auto" where ``auto``)."""
    allowed = (["auto"] if auto else []) + registry.names()
    _check(value in allowed, f"{registry.config_key}: '{value}' is not a registered "
                             f"{registry.kind}; allowed: {', '.join(allowed)}")


def _check_camera_effects(settings: dict, key: str = "data.camera_effects") -> None:
    """Registered effect names, a probability in [0, 1], a severity range [low, high] in [0, 3]."""
    for name, s in settings.items():
        _check(name in CAMERA_EFFECTS, f"{key}: {name!r} is not a camera effect; allowed: "
                                       f"{', '.join(CAMERA_EFFECTS.names())}")
        _check(0.0 <= s.prob <= 1.0, f"{key}.{name}.prob must be in [0, 1] (0 = off), got "
                                     f"{s.prob}")
        sev = list(s.severity)
        _check(len(sev) == 2 and 0.0 <= sev[0] <= sev[1] <= 3.0,
               f"{key}.{name}.severity must be [low, high] with 0 <= low <= high <= 3 (1, 2, "
               f"3 = the benchmark's levels), got {sev}")


def _validate_model_parts(cfg: Config) -> None:
    """Registered names (stemseg_core/registry.py) and the architecture's switches."""
    m = cfg.model
    for registry, value in ((BACKBONES, m.backbone.name), (MIXING_FUNCTIONS, m.embedding.mixing),
                            (ARCHITECTURES, m.architecture)):
        _check_registered(registry, value)
    _validate_model_switches(cfg)


def _validate_model_switches(cfg: Config) -> None:
    """The architecture's switches, the input's channel order, the class vote."""
    m = cfg.model
    official = m.architecture == "official"
    for key in ("separate_seediness_head", "foreground_channel"):
        _check(official or not getattr(m, key), f"model.{key} needs model.architecture: "
                                                f"official (the authors' layout)")
    _check(not m.foreground_channel or m.semantic_head,
           "model.foreground_channel needs model.semantic_head: true")
    if official:
        _check(m.clip_length in POOLED_SLOTS, f"model.clip_length: the official architecture "
                                              f"has clip lengths {sorted(POOLED_SLOTS)}, got "
                                              f"{m.clip_length}")
        _check(m.output_stride == 4, "model.output_stride: the official architecture outputs "
                                     f"at stride 4, got {m.output_stride}")
    sw = m.semantic_widths
    _check(not sw or (len(sw) == 4 and all(w > 0 and w % m.decoder.groupnorm_groups == 0
                                           for w in sw)),
           f"model.semantic_widths: need [] or 4 positive multiples of groupnorm_groups="
           f"{m.decoder.groupnorm_groups}, got {sw}")
    _check(cfg.input.channel_order in CHANNEL_ORDERS,
           f"input.channel_order: '{cfg.input.channel_order}' not one of "
           f"{', '.join(CHANNEL_ORDERS)}")
    i = cfg.inference
    _check(i.class_vote in CLASS_VOTES, f"inference.class_vote: '{i.class_vote}' not one of "
                                        f"{', '.join(CLASS_VOTES)}")
    _check_class_names("inference.min_track_length_per_class", i.min_track_length_per_class,
                       m.class_names)
    negative = {c: v for c, v in i.min_track_length_per_class.items() if v < 0}
    _check(not negative, f"inference.min_track_length_per_class: lengths must be >= 0 frames, "
                         f"got {negative}")


def validate(cfg: Config, *, model_parts: bool = True) -> None:
    """Raise ConfigError on the first value outside its allowed range.

    ``model_parts=False`` leaves out the registered names of the network's parts (backbone,
    mixing, architecture): their registries import torch, and a runtime that loads the built
    graphs from the engine cache never builds the network (its config was checked with them
    when the checkpoint index was written, backends/checkpoint_index.py).
    """
    if model_parts:
        _validate_model_parts(cfg)
    else:
        _validate_model_switches(cfg)
    _validate_model_and_loss(cfg)
    _validate_inference(cfg)
    _validate_data_and_train(cfg)


def _validate_model_and_loss(cfg: Config) -> None:
    m = cfg.model
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
    _check(m.chroma_lowpass in CHROMA_LOWPASS_FACTORS,
           f"model.chroma_lowpass must be one of {CHROMA_LOWPASS_FACTORS} (1 = off, 2 = colour "
           f"at half resolution as 4:2:0), got {m.chroma_lowpass}")
    _check(m.chroma_lowpass == 1 or m.architecture == "stemseg",
           f"model.chroma_lowpass={m.chroma_lowpass} needs model.architecture 'stemseg' (the "
           f"official network takes its input as the authors trained it); set it to 1")
    _check(cfg.loss.seediness_small_instance_area >= 0,
           f"loss.seediness_small_instance_area must be >= 0 (0 = off), got "
           f"{cfg.loss.seediness_small_instance_area}")
    _check(cfg.loss.distill >= 0, f"loss.distill must be >= 0 (0 = off), got {cfg.loss.distill}")
    _check((cfg.loss.distill > 0) == bool(cfg.train.teacher),
           f"loss.distill={cfg.loss.distill} and train.teacher={cfg.train.teacher!r} go together: "
           f"the teacher term needs a teacher checkpoint and a teacher needs loss.distill > 0; "
           f"set both or neither")
    cw = cfg.loss.semantic_class_weights
    _check(not cw or (len(cw) == m.num_classes and all(x > 0 for x in cw)),
           f"loss.semantic_class_weights: need {m.num_classes} positive weights (one per class "
           f"in model.class_names) or [], got {cw}")
    sr = cfg.data.scale_range
    _check(len(sr) == 2 and 0 < sr[0] <= sr[1],
           f"data.scale_range must be [low, high] with 0 < low <= high ([1, 1] = off), got {sr}")


def _validate_inference(cfg: Config) -> None:
    m = cfg.model
    i = cfg.inference
    _check(0 <= i.clip_overlap < m.clip_length,
           f"inference.clip_overlap must be in 0..clip_length-1 = 0..{m.clip_length - 1}, "
           f"got {i.clip_overlap}")
    for spec in LIVE_THRESHOLDS:
        check_live_threshold(spec.name, getattr(i, spec.name), m.class_names,
                             semantic_head=m.semantic_head, key=f"inference.{spec.name}")
    _check(i.center_refinement_steps >= 0, f"inference.center_refinement_steps must be >= 0 "
                                           f"(0 = off), got {i.center_refinement_steps}")
    _check(i.relink_max_gap >= 0, f"inference.relink_max_gap must be >= 0 frames (0 = off), "
                                  f"got {i.relink_max_gap}")
    _check(i.relink_max_distance >= 0, f"inference.relink_max_distance must be >= 0 (in track "
                                       f"box sizes), got {i.relink_max_distance}")
    _check(i.min_track_length >= 0, f"inference.min_track_length must be >= 0 (0 = off), got "
                                    f"{i.min_track_length}")
    _check_class_names("inference.relink_classes", i.relink_classes, m.class_names)
    _check(i.mask_refinement_radius >= 0, f"inference.mask_refinement_radius must be >= 0 "
                                          f"pixels (0 = off), got {i.mask_refinement_radius}")
    _check_class_names("inference.mask_refinement_radius_per_class",
                       i.mask_refinement_radius_per_class, m.class_names)
    bad_r = {c: v for c, v in i.mask_refinement_radius_per_class.items() if v < 1}
    _check(not bad_r, f"inference.mask_refinement_radius_per_class: radii must be >= 1 pixel "
                      f"(leave a class out to use mask_refinement_radius), got {bad_r}")
    _check(i.mask_refinement_eps > 0, f"inference.mask_refinement_eps must be > 0 (e.g. 1e-3), "
                                      f"got {i.mask_refinement_eps}")
    _check_class_names("inference.mask_refinement_classes", i.mask_refinement_classes,
                       m.class_names)
    _check(i.device in DEVICES, f"inference.device: '{i.device}' not one of {', '.join(DEVICES)}")
    _check_registered(BACKENDS, i.backend, auto=True)
    _check(i.precision in PRECISIONS, f"inference.precision: '{i.precision}' not one of "
                                      f"{', '.join(PRECISIONS)}")
    _check(i.num_threads >= 0, f"inference.num_threads must be >= 0 (0 = the library's "
                               f"default), got {i.num_threads}")


def _validate_data_and_train(cfg: Config) -> None:
    m = cfg.model
    d = cfg.data
    _check(d.height > 0 and d.height % 32 == 0 and d.width > 0 and d.width % 32 == 0,
           f"data.height/width must be positive multiples of 32, got {d.height}x{d.width}")
    _check(d.max_frame_stride >= 1, "data.max_frame_stride must be >= 1")
    _check_registered(DATASET_FORMATS, d.format, auto=True)
    _check(0.0 <= d.image_augmented_fraction <= 1.0, "data.image_augmented_fraction in [0, 1]")
    _check(d.oversample_weight >= 0, f"data.oversample_weight must be >= 0 (0 = off), got "
                                     f"{d.oversample_weight}")
    _check(d.oversample_max_area >= 1, f"data.oversample_max_area must be >= 1 pixel, got "
                                       f"{d.oversample_max_area}")
    if d.oversample_weight > 0:
        _check_class_names("data.oversample_class", [d.oversample_class], m.class_names)
    _check_camera_effects(d.camera_effects)
    t = cfg.train
    _check(t.batch_size >= 1 and t.max_steps >= 1, "train.batch_size and train.max_steps >= 1")
    _check(t.lr > 0, f"train.lr must be > 0, got {t.lr}")
    _check(0 < t.lr_decay_factor <= 1, "train.lr_decay_factor must be in (0, 1]")
    _check(t.lr_decay_start >= 0, "train.lr_decay_start must be >= 0")
    _check(t.checkpoint_every >= 1 and t.log_every >= 1, "train.*_every must be >= 1")
    _check(cfg.input.min_side >= 0 and cfg.input.max_side >= 0, "input.min_side/max_side >= 0")


def _cuda_possible() -> bool:
    """Whether CUDA could be available without importing torch: torch is installed and an
    NVIDIA driver is loaded (a machine without either has no CUDA device for torch)."""
    import importlib.util
    import os

    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a finder that refuses it
        return False


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without a GPU raises ConfigError.
    Imports torch only where CUDA could be there (torch installed, NVIDIA driver loaded), so a
    CPU runtime stays without it."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"device '{name}' not one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "cpu" or (name == "auto" and not _cuda_possible()):
        return "cpu"
    try:
        import torch
    except ImportError:
        torch = None
    available = torch is not None and torch.cuda.is_available()
    if name == "auto":
        return "cuda" if available else "cpu"
    if name.startswith("cuda") and not available:
        raise ConfigError(f"device '{name}' requested but CUDA is not available; "
                          f"use 'cpu' or 'auto'")
    return name
