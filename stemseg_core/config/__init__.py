"""Configuration: dataclasses loaded from YAML, with `key=value` overrides and validation.

``schema`` declares the sections, option values and live thresholds; ``loading`` reads YAML and
overrides; ``validation`` checks ranges. Example::

    cfg = load_config("config/model/demo_cpu.yaml", ["train.max_steps=100", "model.clip_length=4"])
"""
from stemseg_core.config.coerce import (
    MAX_TEXT_CHARS,
    parse_flat_list,
    parse_flat_mapping,
    short_repr,
)
from stemseg_core.config.loading import config_from_dict, load_config, save_config
from stemseg_core.config.schema import (
    CHANNEL_ORDERS,
    CLASS_VOTES,
    DEVICES,
    LIVE_THRESHOLD_BY_NAME,
    LIVE_THRESHOLDS,
    OUTPUT_STRIDES,
    BackboneConfig,
    Config,
    DataConfig,
    DecoderConfig,
    EmbeddingConfig,
    InferenceConfig,
    InputConfig,
    LossConfig,
    ModelConfig,
    ThresholdSpec,
    TrainConfig,
)
from stemseg_core.config.validation import check_live_threshold, resolve_device, validate
from stemseg_core.errors import ConfigError

__all__ = [
    "CHANNEL_ORDERS", "CLASS_VOTES", "DEVICES", "LIVE_THRESHOLDS",
    "LIVE_THRESHOLD_BY_NAME", "MAX_TEXT_CHARS", "OUTPUT_STRIDES", "BackboneConfig", "Config",
    "ConfigError", "DataConfig", "DecoderConfig", "EmbeddingConfig", "InferenceConfig",
    "InputConfig", "LossConfig", "ModelConfig", "ThresholdSpec", "TrainConfig",
    "check_live_threshold", "config_from_dict", "load_config", "parse_flat_list",
    "parse_flat_mapping", "resolve_device", "save_config", "short_repr", "validate",
]
