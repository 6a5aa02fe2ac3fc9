"""Parameter table, validation messages and the shipped config/perception.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")

from stemseg_core.config import LIVE_THRESHOLDS  # noqa: E402
from stemseg_ros import params as P  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _defaults(**changes):
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in P.defaults().items()}
    values.update(changes)
    return P.PerceptionParams(**values)


def test_every_parameter_is_described_with_a_matching_descriptor():
    assert {s.name for s in P.SPECS} == set(P.PerceptionParams.__dataclass_fields__)
    for s in P.SPECS:
        assert s.description, s.name
        d = s.descriptor()
        if s.kind is float:
            assert d.dynamic_typing and d.floating_point_range, s.name  # ints accepted
        elif s.kind is int and s.range:
            assert d.integer_range[0].from_value == s.range[0], s.name


def test_threshold_parameters_come_from_the_core_table():
    for t in LIVE_THRESHOLDS:
        spec = P.SPEC_BY_NAME[t.name]
        assert spec.live and t.description in spec.description
        if t.kind in (int, float) and not t.per_class:
            assert spec.default == P.FROM_CHECKPOINT and spec.kind is t.kind
            assert t.high is None or spec.range[1] == t.high
        elif t.per_class:
            assert spec.default == "" and spec.kind is str


def test_shipped_params_file_equals_the_declared_defaults():
    data = yaml.safe_load((REPO / "config" / "perception.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert values == P.defaults()
    for name, value in values.items():
        P.check_value(name, value)


@pytest.mark.parametrize("changes,match", [
    ({"checkpoint": ""}, "parameter 'checkpoint': no checkpoint given"),
    ({"clip_length": 4, "clip_overlap": 4}, "parameter 'clip_overlap': 4 must be smaller"),
    ({"mask_threshold": -0.5}, r"parameter 'mask_threshold'.*\[0, 1\]"),
    ({"max_instances": 0}, "parameter 'max_instances'"),
    ({"seediness_threshold_per_class": "{car: 2}"}, "seediness_threshold_per_class"),
    ({"seediness_threshold_per_class": "{car: [1"}, "is not a map like"),
    ({"device": "tpu"}, "parameter 'device'.*one of auto, cpu, cuda"),
    ({"qos_reliability": "sometimes"}, "parameter 'qos_reliability'.*best_effort, reliable, auto"),
    ({"max_queue_clips": 0}, r"parameter 'max_queue_clips'.*in \[1, 1000\]"),
    ({"input_roi": (0, 0, 10)}, r"parameter 'input_roi'.*\[x, y, width, height\]"),
    ({"mask_threshold": "high"}, "parameter 'mask_threshold': invalid value 'high'"),
])
def test_validation_names_the_parameter_and_allowed_values(changes, match):
    with pytest.raises(P.ParamError, match=match):
        P.validate(_defaults(**changes))


def test_overrides_and_thresholds():
    p = _defaults()
    # the node runs one pass per clip unless told otherwise, whatever the checkpoint says, on
    # the device's deployment default backend
    assert P.tracker_overrides(p) == ["inference.flip_test=false", "inference.backend=openvino",
                                      "inference.precision=bf16"]
    assert P.tracker_overrides(p, "cuda") == [
        "inference.flip_test=false", "inference.backend=torch", "inference.precision=fp32"]
    # a backend without a precision: the checkpoint's precision
    assert P.tracker_overrides(_defaults(backend="torch")) == [
        "inference.flip_test=false", "inference.backend=torch"]
    p = _defaults(clip_length=6, clip_overlap=2, flip_test=True, input_width=640,
                  input_height=192, backend="openvino", num_threads=3)
    assert P.tracker_overrides(p) == [
        "inference.flip_test=true", "model.clip_length=6", "inference.clip_overlap=2",
        "input.min_side=192", "input.max_side=640", "inference.backend=openvino",
        "inference.num_threads=3"]
    ckpt = {"mask_threshold": 0.5, "classes": ["car"], "min_mask_area_per_class": {"car": 9}}
    assert P.thresholds({"mask_threshold": -1.0, "classes": (), "min_mask_area_per_class":
                         "{pedestrian: 60}", "qos_depth": 5}, ckpt) == {
        "mask_threshold": 0.5, "classes": ["car"], "min_mask_area_per_class": {"pedestrian": 60}}
    assert P.thresholds({"min_mask_area_per_class": "", "classes": ("ped",)}, ckpt) == {
        "min_mask_area_per_class": {"car": 9}, "classes": ["ped"]}


def test_node_flip_test_parameter_beats_the_checkpoint(tmp_path, tiny_config):
    import dataclasses

    import torch

    from stemseg_core.checkpoint import save_checkpoint
    from stemseg_core.inference.tracker import StreamingTracker
    from stemseg_core.model import build_model

    cfg = dataclasses.replace(tiny_config, inference=dataclasses.replace(
        tiny_config.inference, flip_test=True))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "flip.pt", build_model(cfg).state_dict(), cfg)
    assert StreamingTracker.from_checkpoint(ckpt, device="cpu").flip_test is True
    for on in (False, True):
        tr = StreamingTracker.from_checkpoint(
            ckpt, device="cpu", overrides=P.tracker_overrides(_defaults(flip_test=on)))
        assert tr.flip_test is on


def test_resolve_checkpoint_looks_in_the_share_directory(tmp_path):
    share = tmp_path / "share"
    (share / "checkpoints").mkdir(parents=True)
    (share / "checkpoints" / "m.pt").write_bytes(b"x")
    assert P.resolve_checkpoint("checkpoints/m.pt", str(share)) == share / "checkpoints" / "m.pt"
    with pytest.raises(P.ParamError, match="file not found: 'nope.pt'"):
        P.resolve_checkpoint("nope.pt", str(share))


def test_bad_overrides_are_recorded_not_raised():
    import rclpy
    from rclpy.parameter import Parameter
    from ros_helpers import unique_domain

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unique_domain())
    try:
        node = rclpy.create_node("params_test", context=ctx, parameter_overrides=[
            Parameter("mask_threshold", value=1.5), Parameter("qos_depth", value=0),
            Parameter("idle_flush_sec", value=2), Parameter("device", value="cpu"),
            Parameter("autostart", value="yes")])
        errors = P.declare(node)
        assert set(errors) == {"mask_threshold", "qos_depth", "autostart"}
        assert "1.5" in errors["mask_threshold"] and "in [-1.0, 1.0]" in errors["mask_threshold"]
        assert "value (0)" in errors["qos_depth"] and "in [1, 1000]" in errors["qos_depth"]
        assert "yes" in errors["autostart"]
        # Bad ones fall back to their defaults, good overrides are kept; 2 became 2.0.
        assert node.get_parameter("mask_threshold").value == -1.0
        assert node.get_parameter("device").value == "cpu"
        assert node.get_parameter("idle_flush_sec").value == 2.0
        assert node.get_parameter("classes").value == [] == node.get_parameter("input_roi").value
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_docs_parameter_table_is_generated_from_the_specs():
    """docs/node.md shows exactly the table P.markdown_table() makes (one source)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "node.md").read_text()
    table = P.markdown_table()
    assert table in page, "docs/node.md is stale: regenerate with `python -m stemseg_ros.params`"
    for spec in P.SPECS:
        assert f"| `{spec.name}` |" in table
