"""Config loading, overrides and validation messages."""
import pytest

from stemseg_core.config import ConfigError, load_config, save_config


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
    ("model.embedding.mixing=xyz", "allowed: xy, xyt, xyf, xytf, xyff, xyfff"),
    ("model.backbone.name=vgg", "allowed: resnet18"),
    ("model.clip_lenght=4", "Did you mean 'clip_length'"),
    ("inference.clip_overlap=8", "0..7"),
    ("inference.mask_threshold=1.5", "in [0, 1]"),
    ("inference.classes=[truck]", "unknown class"),
    ("inference.center_refinement_steps=-1", "center_refinement_steps must be >= 0"),
    ("inference.min_track_length=-2", "min_track_length must be >= 0"),
    ("inference.min_mask_area_per_class={truck: 50}", "min_mask_area_per_class: unknown class"),
    ("inference.min_mask_area_per_class={pedestrian: -1}", "areas must be >= 0"),
    ("inference.min_mask_area_per_class={pedestrian: big}", "min_mask_area_per_class.pedestrian: "
                                                            "expected an integer"),
    ("inference.min_mask_area_per_class=[80]", "expected a mapping"),
    ("inference.seediness_threshold_per_class={truck: 0.5}",
     "seediness_threshold_per_class: unknown class"),
    ("inference.seediness_threshold_per_class={pedestrian: 1.5}", "thresholds must be in [0, 1]"),
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
