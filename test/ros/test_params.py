"""Parameter table, validation messages and the shipped config/perception.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")

from stemseg_ros import params as P  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _defaults(**changes) -> P.PerceptionParams:
    values = {s.name: (() if s.name == "classes" else s.default) for s in P.SPECS}
    values["checkpoint"] = "x.pt"
    values.update(changes)
    return P.PerceptionParams(**values)


def test_every_parameter_is_described_and_in_the_dataclass():
    fields = set(P.PerceptionParams.__dataclass_fields__)
    assert {s.name for s in P.SPECS} == fields
    for s in P.SPECS:
        assert s.description, s.name
        d = s.descriptor()
        if isinstance(s.default, float):
            assert d.floating_point_range, s.name
        elif isinstance(s.default, int) and not isinstance(s.default, bool):
            assert d.integer_range, s.name
    for name in ("checkpoint", "device", "clip_length", "input_transport", "qos_reliability",
                 "max_queue_clips", "idle_flush_sec", "gap_reset_sec", "publish_track_ids"):
        assert name in fields


def test_shipped_params_file_is_valid_and_complete():
    data = yaml.safe_load((REPO / "config" / "perception.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {s.name for s in P.SPECS}
    for name, value in values.items():
        spec = P.SPEC_BY_NAME[name]
        if spec.default is not None:
            assert type(value) is type(spec.default), f"{name}: {value!r} has the wrong type"
        P.check_value(name, value)
    assert values["qos_reliability"] == "best_effort" and values["autostart"] is True


@pytest.mark.parametrize("changes,match", [
    ({"checkpoint": ""}, "parameter 'checkpoint': no checkpoint given"),
    ({"clip_length": 4, "clip_overlap": 4}, "parameter 'clip_overlap': 4 must be smaller"),
    ({"input_width": 640}, "set both or neither"),
    ({"mask_threshold": -0.5}, "parameter 'mask_threshold'.*-1"),
    ({"device": "tpu"}, "parameter 'device'.*one of auto, cpu, cuda"),
    ({"qos_reliability": "sometimes"}, "parameter 'qos_reliability'.*best_effort, reliable, auto"),
    ({"max_queue_clips": 0}, r"parameter 'max_queue_clips'.*in \[1, 1000\]"),
])
def test_validation_names_the_parameter_and_allowed_values(changes, match):
    with pytest.raises(P.ParamError, match=match):
        P.validate(_defaults(**changes))


def test_overrides_and_thresholds():
    p = _defaults()
    # the node runs one pass per clip unless told otherwise, whatever the checkpoint says
    assert p.tracker_overrides() == ["inference.flip_test=false"] and p.thresholds() == {}
    p = _defaults(clip_length=6, clip_overlap=2, classes=("car",), mask_threshold=0.3,
                  min_mask_area=0, flip_test=True)
    assert p.tracker_overrides() == ["inference.flip_test=true", "model.clip_length=6",
                                     "inference.clip_overlap=2", "inference.classes=[car]"]
    assert p.thresholds() == {"mask_threshold": 0.3, "min_mask_area": 0}


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
            ckpt, device="cpu", overrides=_defaults(flip_test=on).tracker_overrides())
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
            Parameter("idle_flush_sec", value=2), Parameter("device", value="cpu")])
        errors = P.declare(node)
        assert set(errors) == {"mask_threshold", "qos_depth", "idle_flush_sec"}
        assert "invalid value 1.5" in errors["mask_threshold"]
        assert "in [-1.0, 1.0]" in errors["mask_threshold"]
        assert "in [1, 1000]" in errors["qos_depth"]
        assert "write 2.0 for a double" in errors["idle_flush_sec"]
        # Bad ones fall back to their defaults, good overrides are kept.
        assert node.get_parameter("mask_threshold").value == -1.0
        assert node.get_parameter("device").value == "cpu"
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
