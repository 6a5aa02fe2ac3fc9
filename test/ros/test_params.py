"""Parameter table, validation messages and the shipped config/perception.yaml."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")

from stemseg_core.config import LIVE_THRESHOLD_BY_NAME, LIVE_THRESHOLDS  # noqa: E402
from stemseg_ros import core_settings, param_docs, param_io  # noqa: E402
from stemseg_ros import param_checks as checks  # noqa: E402
from stemseg_ros import params as P  # noqa: E402
from stemseg_ros.param_spec import Spec  # noqa: E402

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
        checks.check_value(name, value)


@pytest.mark.parametrize("changes,match", [
    ({"checkpoint": ""}, "parameter 'checkpoint': no checkpoint given"),
    ({"clip_length": 4, "clip_overlap": 4}, "parameter 'clip_overlap': 4 must be smaller"),
    ({"mask_threshold": -0.5}, "parameter 'mask_threshold'.*" + re.escape(
        LIVE_THRESHOLD_BY_NAME["mask_threshold"].allowed())),
    ({"max_instances": 0}, "parameter 'max_instances'"),
    ({"seediness_threshold_per_class": "{car: 2}"}, "seediness_threshold_per_class"),
    ({"seediness_threshold_per_class": "{car: [1"}, "expected a flat value like"),
    ({"device": "tpu"}, "parameter 'device'.*one of auto, cpu, cuda"),
    ({"qos_reliability": "sometimes"}, "parameter 'qos_reliability'.*best_effort, reliable, auto"),
    ({"max_queue_clips": 0}, r"parameter 'max_queue_clips'.*in \[1, 1000\]"),
    ({"input_roi": (0, 0, 10)}, r"parameter 'input_roi'.*\[x, y, width, height\]"),
    ({"mask_threshold": "high"}, "parameter 'mask_threshold': invalid value 'high'"),
    ({"lidar_to_camera": (1.0,) * 9}, r"parameter 'lidar_to_camera'.*16 \(4x4\) or 12"),
    ({"lidar_to_camera": (float("nan"),) * 16}, "parameter 'lidar_to_camera'.*finite"),
    ({"use_lidar": True}, "parameter 'use_lidar'.*lidar_to_camera.*or calib_file"),
    ({"sync_tolerance_sec": -0.1}, "parameter 'sync_tolerance_sec'"),
])
def test_validation_names_the_parameter_and_allowed_values(changes, match):
    with pytest.raises(P.ParamError, match=match):
        checks.validate(_defaults(**changes))


def test_lidar_to_camera_takes_integers_and_floats_as_floats():
    assert checks.check_value("lidar_to_camera", [1, 0, 0, 0.5] * 3) == (1.0, 0.0, 0.0, 0.5) * 3
    checks.validate(_defaults(use_lidar=True, lidar_to_camera=(0.0,) * 16))
    checks.validate(_defaults(use_lidar=True, calib_file="calib.txt"))


def test_a_spec_with_a_core_key_is_a_loading_parameter_passed_on_when_set(monkeypatch):
    """Adding a loading parameter is one Spec line: `core` alone makes it reload the model and
    reach the core's config, only when it differs from its default."""
    extra = Spec("decoder_threads", 0, "test only", range=(0, 8), core="inference.num_threads")
    assert extra.name not in P.LOADING
    assert "engine_cache_dir" in P.LOADING and "checkpoint" in P.LOADING
    monkeypatch.setattr(core_settings, "SPECS", (*P.SPECS, extra))
    values = dataclasses.asdict(_defaults(backend="torch"))
    assert core_settings.tracker_overrides(SimpleNamespace(**values, decoder_threads=0)) == {
        "inference.flip_test": False, "inference.backend": "torch"}
    assert core_settings.tracker_overrides(SimpleNamespace(**values, decoder_threads=5)) == {
        "inference.flip_test": False, "inference.backend": "torch", "inference.num_threads": 5}


def test_overrides_and_thresholds():
    p = _defaults()
    # the node runs one pass per clip unless told otherwise, whatever the checkpoint says, on
    # the device's deployment default backend
    assert core_settings.tracker_overrides(p) == {
        "inference.flip_test": False, "inference.backend": "openvino",
        "inference.precision": "bf16"}
    assert core_settings.tracker_overrides(p, "cuda") == {
        "inference.flip_test": False, "inference.backend": "torch", "inference.precision": "fp32"}
    # a backend without a precision: the checkpoint's precision
    assert core_settings.tracker_overrides(_defaults(backend="torch")) == {
        "inference.flip_test": False, "inference.backend": "torch"}
    p = _defaults(clip_length=6, clip_overlap=2, flip_test=True, input_width=640,
                  input_height=192, backend="openvino", num_threads=3)
    assert core_settings.tracker_overrides(p) == {
        "inference.flip_test": True, "model.clip_length": 6, "inference.clip_overlap": 2,
        "input.min_side": 192, "input.max_side": 640, "inference.backend": "openvino",
        "inference.num_threads": 3}
    ckpt = {"mask_threshold": 0.5, "classes": ["car"], "min_mask_area_per_class": {"car": 9}}
    assert core_settings.thresholds({"mask_threshold": -1.0, "classes": (),
                                     "min_mask_area_per_class": "{pedestrian: 60}",
                                     "qos_depth": 5}, ckpt) == {
        "mask_threshold": 0.5, "classes": ["car"], "min_mask_area_per_class": {"pedestrian": 60}}
    got = core_settings.thresholds({"min_mask_area_per_class": "", "classes": ("ped",)}, ckpt)
    assert got == {"min_mask_area_per_class": {"car": 9}, "classes": ["ped"]}


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
            ckpt, device="cpu", overrides=core_settings.tracker_overrides(_defaults(flip_test=on)))
        assert tr.flip_test is on


def test_resolve_checkpoint_looks_in_the_share_directory(tmp_path):
    share = tmp_path / "share"
    (share / "checkpoints").mkdir(parents=True)
    (share / "checkpoints" / "m.pt").write_bytes(b"x")
    found = core_settings.resolve_checkpoint("checkpoints/m.pt", str(share))
    assert found == share / "checkpoints" / "m.pt"
    with pytest.raises(P.ParamError, match="file not found: 'nope.pt'"):
        core_settings.resolve_checkpoint("nope.pt", str(share))


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
        errors = param_io.declare(node)
        assert set(errors) == {"mask_threshold", "qos_depth", "autostart"}
        high = LIVE_THRESHOLD_BY_NAME["mask_threshold"].high
        assert "1.5" in errors["mask_threshold"]
        assert f"in [-1.0, {high}]" in errors["mask_threshold"]
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
    """docs/node.md shows exactly the table param_docs.markdown_table() makes (one source)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "node.md").read_text()
    table = param_docs.markdown_table()
    assert table in page, "docs/node.md stale: regenerate: `python -m stemseg_ros.param_docs`"
    for spec in P.SPECS:
        assert f"| `{spec.name}` |" in table


# ----------------------------------------------------------------------------------------------
# Parameters any DDS peer may set (issue 35)


def test_trust_switches_and_limits_are_read_only():
    read_only = {s.name for s in P.SPECS if s.read_only}
    assert read_only == {"allow_pickle", "checkpoint_sha256", "allow_remote_model_change",
                         "max_image_pixels"}
    for name in read_only:
        d = P.SPEC_BY_NAME[name].descriptor()
        assert d.read_only and "set at start only" in d.additional_constraints, name
    assert not P.SPEC_BY_NAME["checkpoint"].descriptor().read_only
    assert P.defaults()["max_image_pixels"] == 4096 * 2160  # DCI 4K: covers UHD 3840x2160
    assert "| `allow_pickle` | `False` | bool | start |" in param_docs.markdown_table()


class _Prm:
    def __init__(self, name, value):
        self.name, self.value = name, value


def _changes(active=False, remote=False, **values):
    return checks.check_changes([_Prm(k, v) for k, v in values.items()], active=active,
                           remote_model_change=remote)


def test_model_choice_changes_only_when_allowed_at_start():
    for name, value in (("checkpoint", "/tmp/other.pt"), ("backend", "torch"),
                        ("engine_cache_dir", "/tmp/planted")):
        with pytest.raises(P.ParamError, match="allow_remote_model_change: true"):
            _changes(**{name: value})
        assert _changes(remote=True, **{name: value}) == {name: value}
        with pytest.raises(P.ParamError, match="deactivate, set it, activate again"):
            _changes(active=True, remote=True, **{name: value})
    for name in ("allow_pickle", "checkpoint_sha256", "max_image_pixels"):
        with pytest.raises(P.ParamError, match="set at start only"):
            _changes(remote=True, **{name: P.defaults()[name]})
    # not the model: still changeable while inactive, thresholds live
    assert _changes(precision="fp32", mask_threshold=0.4, active=False) == {
        "precision": "fp32", "mask_threshold": 0.4}
    assert _changes(active=True, mask_threshold=0.4) == {"mask_threshold": 0.4}


@pytest.mark.parametrize("name,value,match", [
    ("seediness_threshold_per_class", "[" * 3000, "nested"),
    ("min_mask_area_per_class", "{a: " * 3000, "characters long|nested|not a"),
    ("min_mask_area_per_class", "x" * 100_000, "characters long"),
    ("seediness_threshold_per_class", "a: &a [1]\nb: *a", "flat"),
    ("max_instances", 100_000_000, "max_instances"),
    ("mask_threshold", 1.0, "mask_threshold"),
    ("mask_threshold", None, "invalid value None"),  # a NOT_SET value would undeclare it
    ("checkpoint", None, "invalid value None"),
    ("input_roi", list(range(10_000)), "input_roi"),
])
def test_hostile_values_are_refused_with_a_short_reason(name, value, match):
    with pytest.raises(P.ParamError, match=match) as e:
        _changes(remote=True, **{name: value})
    assert len(str(e.value)) < 400, str(e.value)


@pytest.mark.parametrize("value", ["yes", "no", "/tmp/x # c", "null", "~", "", "'q'", '"q"',
                                   "a: b", "[1]", "{a: 1}", "-1", " lead", "ü😀", "a=b", "1e3"])
def test_string_parameters_reach_the_core_config_unchanged(value):
    """engine_cache_dir / backend / precision go to the core as a typed override (no text read
    back as YAML): `yes` stays "yes" and `# c` is kept."""
    from stemseg_core.config.loading import apply_overrides

    p = _defaults(engine_cache_dir=value, backend="torch", precision="fp32")
    data: dict = {}
    apply_overrides(data, core_settings.tracker_overrides(p))
    assert data["inference"].get("engine_cache_dir", "") == value
    assert data["inference"]["backend"] == "torch"

_FUZZ = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
_VALUES = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
           | st.floats(allow_nan=True) | st.text(max_size=200)
           | st.text(alphabet="{}[],:&*!'\"# \n-0.5abc", max_size=300)
           | st.lists(st.integers(-2**63, 2**63 - 1), max_size=20)
           | st.lists(st.text(max_size=20), max_size=20)
           | st.lists(st.floats(allow_nan=True), min_size=12, max_size=16))


@_FUZZ
@given(name=st.sampled_from(sorted(P.SPEC_BY_NAME) + ["not_ours"]), value=_VALUES,
       active=st.booleans(), remote=st.booleans())
def test_fuzz_parameter_changes_only_refuse(name, value, active, remote):
    """Whatever a peer sends in a set request, the node's check returns values of the declared
    kind or refuses with a short ParamError; nothing else escapes (the node's callback also
    catches everything, this is what it relies on)."""
    try:
        out = _changes(active=active, remote=remote, **{name: value})
    except P.ParamError as e:
        assert len(str(e)) < 600
        return
    if name == "not_ours":
        assert out == {}
        return
    spec = P.SPEC_BY_NAME[name]
    assert not spec.read_only
    assert isinstance(out[name], tuple if spec.item else spec.kind)
    if isinstance(out[name], str) and name in P.THRESHOLDS and out[name]:
        assert isinstance(core_settings.thresholds(out, {})[name], dict)

