"""Config loading, overrides and validation messages."""
import numpy as np
import pytest

from stemseg_core.config import (
    LIVE_THRESHOLDS,
    ConfigError,
    InferenceConfig,
    check_live_threshold,
    load_config,
    save_config,
)


def test_defaults_and_overrides():
    cfg = load_config(None, ["model.embedding.mixing=xyff", "model.clip_length=16",
                             "inference.classes=[car]", "train.amp=false"])
    assert cfg.model.embedding.mixing == "xyff"
    assert cfg.model.embedding.dims == 4
    assert cfg.model.clip_length == 16
    assert cfg.inference.classes == ["car"]
    assert cfg.train.amp is False
    assert cfg.model.num_classes == 3
    cfg = load_config(None, ["inference.min_mask_area_per_class={pedestrian: 80, car: '150'}"])
    assert cfg.inference.min_mask_area_per_class == {"pedestrian": 80, "car": 150}
    cfg = load_config(None, ["inference.seediness_threshold_per_class={pedestrian: 0.5}"])
    assert cfg.inference.seediness_threshold_per_class == {"pedestrian": 0.5}


def test_yaml_file_round_trip(tmp_path):
    cfg = load_config(None, ["model.backbone.name=resnet18", "data.height=96",
                             "inference.min_mask_area_per_class={pedestrian: 80}"])
    p = tmp_path / "c.yaml"
    save_config(cfg, p)
    again = load_config(p)
    assert again == cfg


@pytest.mark.parametrize("override,expected", [
    ("model.embedding.mixing=xyz", "'xyz' is not a registered mixing function; allowed: tyx, xy,"),
    ("model.backbone.name=vgg", "'vgg' is not a registered backbone; allowed: "),
    ("model.clip_lenght=4", "Did you mean 'clip_length'"),
    ("inference.clip_overlap=8", "0..7"),
    ("inference.mask_threshold=1.5", "in [0.001, 0.999]"),
    ("inference.classes=[truck]", "unknown class"),
    ("inference.center_refinement_steps=-1", "center_refinement_steps must be >= 0"),
    ("inference.min_track_length=-2", "min_track_length must be >= 0"),
    ("inference.min_mask_area_per_class={truck: 50}", "min_mask_area_per_class: unknown class"),
    ("inference.min_mask_area_per_class={pedestrian: -1}",
     "min_mask_area_per_class: values must be {class name: an integer >= 0}"),
    ("inference.min_mask_area_per_class={pedestrian: big}", "min_mask_area_per_class.pedestrian: "
                                                            "expected an integer"),
    ("inference.min_mask_area_per_class=[80]", "expected a mapping"),
    ("inference.seediness_threshold_per_class={truck: 0.5}",
     "seediness_threshold_per_class: unknown class"),
    ("inference.seediness_threshold_per_class={pedestrian: 1.5}",
     "values must be {class name: a number in [0, 1]}"),
    ("inference.max_instances=0", "inference.max_instances must be an integer in [1, 1000], "
                                  "got 0"),
    ("inference.stitch_min_iou=-0.1", "inference.stitch_min_iou must be a number in [0, 1]"),
    ("inference.mask_threshold=true", "inference.mask_threshold: expected a number"),
    ("loss.seediness_small_instance_area=-5", "seediness_small_instance_area must be >= 0"),
    ("inference.relink_max_gap=-1", "relink_max_gap must be >= 0 frames"),
    ("inference.relink_max_distance=-0.5", "relink_max_distance must be >= 0"),
    ("inference.relink_classes=[truck]", "relink_classes: unknown class"),
    ("inference.mask_refinement_radius=-1", "mask_refinement_radius must be >= 0 pixels"),
    ("inference.mask_refinement_radius_per_class={pedestrian: 0}", "radii must be >= 1 pixel"),
    ("inference.mask_refinement_eps=0", "mask_refinement_eps must be > 0"),
    ("inference.mask_refinement_classes=[truck]", "mask_refinement_classes: unknown class"),
    ("data.scale_range=[1.5, 1.0]", "data.scale_range must be [low, high]"),
    ("data.scale_range=[0, 1.0]", "0 < low <= high"),
    ("data.height=100", "multiples of 32"),
    ("train.lr=abc", "expected a number"),
    ("model.clip_length=2.5", "expected an integer"),
])
def test_bad_values_name_the_key_and_allowed_values(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_per_class_seediness_needs_the_semantic_head():
    with pytest.raises(ConfigError, match="needs model.semantic_head: true"):
        load_config(None, ["model.semantic_head=false",
                           "inference.seediness_threshold_per_class={pedestrian: 0.5}"])


NAMES = ["background", "car", "pedestrian"]


def test_every_live_threshold_is_an_inference_field_of_its_kind():
    defaults = InferenceConfig()
    assert len({s.name for s in LIVE_THRESHOLDS}) == len(LIVE_THRESHOLDS)
    for spec in LIVE_THRESHOLDS:
        value = getattr(defaults, spec.name)  # AttributeError = a spec without a config field
        if spec.per_class:
            assert value == {} and spec.kind in (int, float), spec.name
        else:
            assert isinstance(value, spec.kind), spec.name
        # the default passes its own check unchanged
        assert check_live_threshold(spec.name, value, NAMES) == value


def test_live_threshold_conversion_and_errors():
    assert check_live_threshold("stitch_min_iou", 1, NAMES) == 1.0
    assert isinstance(check_live_threshold("foreground_threshold", 0, NAMES), float)
    assert check_live_threshold("min_mask_area", 80.0, NAMES) == 80
    assert check_live_threshold("min_mask_area", np.int64(80), NAMES) == 80
    assert check_live_threshold("mask_threshold", np.float32(0.25), NAMES) == 0.25
    with pytest.raises(ConfigError, match="expected an integer, got inf"):
        check_live_threshold("min_mask_area", float("inf"), NAMES)
    with pytest.raises(ConfigError, match="mask_threshold must be a number in"):
        check_live_threshold("mask_threshold", float("nan"), NAMES)
    assert check_live_threshold("classes", "car, pedestrian", NAMES) == ["car", "pedestrian"]
    assert check_live_threshold("min_mask_area_per_class", {"pedestrian": 80.0}, NAMES) == {
        "pedestrian": 80}
    assert check_live_threshold("seediness_threshold_per_class", "{car: 1}", NAMES) == {
        "car": 1.0}
    assert check_live_threshold("seediness_threshold_per_class", "", NAMES) == {}
    with pytest.raises(ConfigError, match=r"mask_threshold must be a number in \[0.001, 0.999\], "
                                          r"got 2"):
        check_live_threshold("mask_threshold", 2, NAMES)
    with pytest.raises(ConfigError, match="unknown threshold 'clip_overlap'; allowed: "
                                          "seediness_threshold, "):
        check_live_threshold("clip_overlap", 2, NAMES)
    with pytest.raises(ConfigError, match=r"unknown class\(es\) \['truck'\]"):
        check_live_threshold("min_mask_area_per_class", {"truck": 5}, NAMES)
    with pytest.raises(ConfigError, match="background"):  # background is not a class to pick
        check_live_threshold("classes", ["background"], NAMES)
    with pytest.raises(ConfigError, match=r"values must be .*got \{'car': -3\}"):
        check_live_threshold("min_mask_area_per_class", {"car": -3}, NAMES)
    with pytest.raises(ConfigError, match="needs model.semantic_head"):
        check_live_threshold("seediness_threshold_per_class", {"car": 0.3}, NAMES,
                             semantic_head=False)
    with pytest.raises(ConfigError, match=r"max_instances must be an integer in \[1, 1000\]"):
        check_live_threshold("max_instances", 0, NAMES)


def test_typed_overrides_keep_python_values_and_are_validated_alike():
    """A {"section.key": value} mapping (the ROS node's form) sets values without a text round
    trip; they are coerced and validated as `key=value` strings are."""
    cfg = load_config(None, {"inference.engine_cache_dir": "yes # c", "model.clip_length": 6,
                             "inference.flip_test": False, "inference.clip_overlap": 2})
    assert cfg.inference.engine_cache_dir == "yes # c"
    assert (cfg.model.clip_length, cfg.inference.flip_test) == (6, False)
    assert cfg == load_config(None, ["inference.engine_cache_dir='yes # c'",
                                     "model.clip_length=6", "inference.flip_test=false",
                                     "inference.clip_overlap=2"])
    with pytest.raises(ConfigError, match="model.clip_length.*expected an integer"):
        load_config(None, {"model.clip_length": "six"})
