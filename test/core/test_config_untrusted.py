"""Config values from untrusted text (node parameters any DDS peer may set, issue 35): flat maps
and lists parsed with bounded size and no nesting, errors quoting a short prefix, live
thresholds bounded so that no value exhausts memory. Fuzzed with hypothesis."""
from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stemseg_core.config import (
    LIVE_THRESHOLD_BY_NAME,
    MAX_TEXT_CHARS,
    ConfigError,
    check_live_threshold,
    load_config,
    parse_flat_list,
    parse_flat_mapping,
    short_repr,
)
from stemseg_core.config.coerce import coerce

NAMES = ["background", "car", "pedestrian"]
FUZZ = settings(max_examples=int(os.environ.get("STEMSEG_FUZZ_EXAMPLES", 200)), deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])
#: Longest error message any input may produce (the value is quoted by a short prefix only).
MAX_MESSAGE = 600


# --------------------------------------------------------------------------------------------
# The attacks


@pytest.mark.parametrize("text", ["[" * 3000, "{a: " * 3000, "[" * 3000 + "]" * 3000,
                                  "{a: [" * 1000 + "1" + "]}" * 1000])
def test_nested_brackets_are_refused_not_recursed(text):
    """`ros2 param set ... seediness_threshold_per_class "[[[[..."` ended the node with a
    RecursionError from yaml.safe_load."""
    for parse in (parse_flat_mapping, parse_flat_list):
        with pytest.raises(ConfigError) as e:
            parse(text, "parameter 'seediness_threshold_per_class'")
        assert len(str(e.value)) < MAX_MESSAGE
        assert "parameter 'seediness_threshold_per_class'" in str(e.value)
    with pytest.raises(ConfigError):
        check_live_threshold("seediness_threshold_per_class", text, NAMES)


ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]",
                        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
                        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
                        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
                        "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]"])


def test_alias_bomb_is_refused_with_a_short_message():
    with pytest.raises(ConfigError, match="only a flat value") as e:
        parse_flat_mapping(ALIAS_BOMB, "parameter 'min_mask_area_per_class'")
    assert len(str(e.value)) < MAX_MESSAGE
    with pytest.raises(ConfigError, match="anchors/aliases"):
        parse_flat_mapping("{car: &x 3, pedestrian: *x}", "m")
    with pytest.raises(ConfigError, match="anchors/aliases"):
        parse_flat_list("[*x]", "l")
    with pytest.raises(ConfigError, match="anchors/aliases"):
        parse_flat_mapping("{car: !!python/object:os.system 1}", "m")


def test_a_megabyte_is_refused_unread_and_quoted_by_a_prefix():
    big = "{car: " + "9" * 1_000_000 + "}"
    with pytest.raises(ConfigError) as e:
        parse_flat_mapping(big, "parameter 'min_mask_area_per_class'")
    msg = str(e.value)
    assert f"1000007 characters long, at most {MAX_TEXT_CHARS}" in msg
    assert "'{car: 999" in msg and "... (1000007 characters)" in msg and len(msg) < 400
    # every coercion error quotes a short prefix only
    for tp in (float, int, bool, dict[str, float], list[int]):
        with pytest.raises(ConfigError) as e:
            coerce("x" * 1_000_000, tp, "k")
        assert len(str(e.value)) < 400, tp
    with pytest.raises(ConfigError) as e:
        check_live_threshold("mask_threshold", "9" * 100_000, NAMES)
    assert len(str(e.value)) < 400


def test_short_repr():
    assert short_repr("abc") == "'abc'"
    assert short_repr("x" * 100) == repr("x" * 60) + "... (100 characters)"
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    assert len(short_repr(deep)) < 100  # no recursion into 10000 levels
    assert len(short_repr(list(range(100_000)))) < 100
    assert short_repr({"car": 3}) == "{'car': 3}"


# --------------------------------------------------------------------------------------------
# What the parsers accept


@pytest.mark.parametrize(("text", "want"), [
    ("{car: 0.8, pedestrian: 0.85}", {"car": 0.8, "pedestrian": 0.85}),
    ('{"car": 80, "pedestrian": 120}', {"car": 80, "pedestrian": 120}),
    ("{'car': .5,}", {"car": 0.5}),
    ("car: 1e-3\npedestrian: 2", {"car": 0.001, "pedestrian": 2}),
    ("  { car : -1 }  ", {"car": -1}),
    ("{traffic light: 3}", {"traffic light": 3}),
    ('{"a:b": 1}', {"a:b": 1}),
    ("{car:0.5}", {"car": 0.5}),
    ("", {}), ("{}", {}), ("  ", {}),
])
def test_flat_mapping_accepts_what_yaml_and_json_write(text, want):
    got = parse_flat_mapping(text, "m")
    assert got == want
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


@pytest.mark.parametrize(("text", "match"), [
    ("{car: 0.8", "does not end with '}'"),
    ("{car: 0.8, car: 0.9}", "'car' is given twice"),
    ("{car: fast}", "value of 'car' is 'fast', not a number"),
    ("{car: nan}", "not a number"), ("{car: inf}", "not a number"),
    ("{car}", "not a 'name: number' pair"),
    ("{car: [1]}", "nested '\\['"),
    ("{car: {a: 1}}", "nested '{'"),
    ("{: 3}", "is empty"),
    ("{car # x: 3}", "contains '#'"),
    ('{"ca"r": 3}', "holds a quote"),
])
def test_flat_mapping_refusals_name_the_problem(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_flat_mapping(text, "parameter 'min_mask_area_per_class'")


@pytest.mark.parametrize(("text", "want"), [
    ("[car, pedestrian]", ["car", "pedestrian"]), ("car,pedestrian", ["car", "pedestrian"]),
    ("[32, 32, 64, 64]", [32, 32, 64, 64]), ("[0.5, '1', \"x y\"]", [0.5, 1, "x y"]),
    ("[yes, null]", ["yes", "null"]),  # names stay names (YAML would give True / None)
    ("", []), ("[]", []), ("[car,]", ["car"]),
])
def test_flat_list(text, want):
    assert parse_flat_list(text, "l") == want


def test_config_strings_go_through_the_flat_parsers():
    cfg = load_config(None, ['inference.min_mask_area_per_class="{car: 80, pedestrian: 120}"',
                             'inference.classes="car, pedestrian"',
                             'model.decoder.widths="[256, 256, 128, 128]"'])
    assert cfg.inference.min_mask_area_per_class == {"car": 80, "pedestrian": 120}
    assert cfg.inference.classes == ["car", "pedestrian"]
    assert cfg.model.decoder.widths == [256, 256, 128, 128]
    assert check_live_threshold("seediness_threshold_per_class", "{car: 1}", NAMES) == {
        "car": 1.0}
    with pytest.raises(ConfigError, match=r"min_mask_area_per_class.car: expected an integer"):
        check_live_threshold("min_mask_area_per_class", "{car: 2.5}", NAMES)


# --------------------------------------------------------------------------------------------
# Live threshold ranges


@pytest.mark.parametrize(("name", "value"), [
    ("max_instances", 1001), ("max_instances", 100_000_000), ("max_instances", 0),
    ("mask_threshold", 1.0), ("mask_threshold", 0.0), ("mask_threshold", 0.9995),
])
def test_live_thresholds_that_would_exhaust_memory_are_refused(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be"):
        check_live_threshold(name, value, NAMES)


def test_live_threshold_bounds_are_usable():
    assert check_live_threshold("max_instances", 1000, NAMES) == 1000
    assert check_live_threshold("mask_threshold", 0.999, NAMES) == 0.999
    assert check_live_threshold("mask_threshold", 0.001, NAMES) == 0.001
    assert LIVE_THRESHOLD_BY_NAME["max_instances"].high == 1000
    assert LIVE_THRESHOLD_BY_NAME["mask_threshold"].allowed() == "a number in [0.001, 0.999]"


# --------------------------------------------------------------------------------------------
# Fuzzing

_BRACKETY = st.text(alphabet="{}[]:,&*!'\" \n#abc0123.-e", max_size=300)
_NESTED = st.recursive(st.sampled_from(["car", "1", "0.5", "*a", "&a x", ""]),
                       lambda inner: st.one_of(
                           st.lists(inner, max_size=4).map(lambda v: "[" + ", ".join(v) + "]"),
                           st.lists(st.tuples(st.sampled_from(["car", "p", "&a k", "*a"]), inner),
                                    max_size=3).map(
                               lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}")),
                       max_leaves=30)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), _BRACKETY, _NESTED,
                      st.integers(1, 5000).map(lambda n: "[" * n),
                      st.integers(1, 2000).map(lambda n: "{a: " * n + "1" + "}" * n)))
def test_fuzz_parsers_raise_only_config_errors(text):
    for parse in (parse_flat_mapping, parse_flat_list):
        try:
            out = parse(text, "parameter 'x'")
        except ConfigError as e:
            event(f"{parse.__name__}: refused")
            assert len(str(e)) < MAX_MESSAGE
            continue
        event(f"{parse.__name__}: parsed")
        values = out.values() if isinstance(out, dict) else out
        assert all(isinstance(v, (str, int, float)) for v in values)  # flat, always
    for name in ("seediness_threshold_per_class", "min_mask_area_per_class", "classes",
                 "mask_threshold", "max_instances"):
        try:
            check_live_threshold(name, text, NAMES)
        except ConfigError as e:
            assert len(str(e)) < MAX_MESSAGE


_NAME = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda s: s not in {"yes", "no", "on", "off", "true", "false", "null", "y", "n"})
_VALUE = st.one_of(st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32))


@FUZZ
@given(mapping=st.dictionaries(_NAME, _VALUE, max_size=8), quote=st.sampled_from(["", "'", '"']),
       sep=st.sampled_from([", ", ",", ",\n"]))
def test_fuzz_flat_mapping_reads_what_yaml_reads(mapping, quote, sep):
    text = "{" + sep.join(f"{quote}{k}{quote}: {v!r}" for k, v in mapping.items()) + "}"
    got = parse_flat_mapping(text, "m")
    assert got == mapping
    # YAML 1.1 reads "1e-05" as a string; as numbers both agree
    theirs = yaml.safe_load(text)
    assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in theirs.items()}
