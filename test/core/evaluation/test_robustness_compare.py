"""Paired comparison of two robustness results (hand-built results, values by hand)."""
from __future__ import annotations

import json
import math

import pytest

from stemseg_core.evaluation.robustness_benchmark import delta_cell, mean_and_se, summary_rows
from stemseg_core.evaluation.robustness_compare import (
    check_comparable,
    compare_results,
    comparison_markdown,
    load_result,
    plot_pooled,
    pooled_comparison,
    pooled_markdown,
    verdict,
)


def _result(per_drive: dict[str, dict[str, float | None]], set_hota=(70.0, 50.0), *,
            effect="lossless", severity=0.0, frames=60, seed=0, gt="g1") -> dict:
    car, ped = set_hota
    variant = {"effect": effect, "severity": severity,
               "metrics": {"car": {"HOTA": car}, "pedestrian": {"HOTA": ped}},
               "per_sequence": per_drive}
    return {"variants": [variant], "sequences": sorted(per_drive), "frames": frames,
            "seed": seed, "classes": ["car", "pedestrian"], "gt_sha256": gt}


BASE = {"a": {"car": 70.0, "pedestrian": 50.0}, "b": {"car": 60.0, "pedestrian": None},
        "c": {"car": 80.0, "pedestrian": 40.0}}
# car per drive +1, +2, +6: mean 3, sd sqrt(14 / 2), se sqrt(7 / 3); pedestrian: drive b has
# no ground truth of the class in the baseline, c none in this run: one drive, -4, no error
RUN = {"a": {"car": 71.0, "pedestrian": 46.0}, "b": {"car": 62.0, "pedestrian": 55.0},
       "c": {"car": 86.0, "pedestrian": None}}


def test_mean_and_se_by_hand():
    assert mean_and_se([1.0, 2.0, 6.0]) == pytest.approx((3.0, math.sqrt(7 / 3)))
    m, se = mean_and_se([4.0])
    assert m == 4.0 and math.isnan(se)


def test_paired_change_per_class_by_hand():
    rows = compare_results(_result(RUN, (73.0, 49.0)), _result(BASE))
    car, ped = rows
    assert (car["class"], car["effect"], car["severity"]) == ("car", "lossless", 0.0)
    assert car["change"] == pytest.approx(3.0) and car["drives"] == 3
    assert car["paired_mean"] == pytest.approx(3.0)
    assert car["paired_se"] == pytest.approx(math.sqrt(7 / 3))
    assert ped["drives"] == 1 and ped["paired_mean"] == pytest.approx(-4.0)
    assert ped["paired_se"] is None and ped["change"] == pytest.approx(-1.0)
    json.dumps(rows, allow_nan=False)  # no NaN reaches robustness.json
    table = comparison_markdown(rows)
    # 3.0 is not more than twice its error 1.53: not resolved by three drives
    assert "| lossless | 0 | car | 70.0 | 73.0 | +3.0 | +3.0 ±1.5 (3) | unresolved |" in table
    assert "| pedestrian | 50.0 | 49.0 | -1.0 | (1 drives) | too few drives |" in table


def test_resolved_when_the_change_exceeds_twice_its_error():
    run = {k: {"car": v["car"] + 5.0 + 0.1 * i, "pedestrian": None}
           for i, (k, v) in enumerate(BASE.items())}
    (car, _ped) = compare_results(_result(run), _result(BASE))
    assert car["paired_mean"] == pytest.approx(5.1)
    assert car["paired_se"] == pytest.approx(0.1 / math.sqrt(3))
    assert "| better |" in comparison_markdown([car])


def test_only_variants_in_both_and_refusals(tmp_path):
    jpeg = _result(RUN, effect="jpeg", severity=1.0)
    with pytest.raises(ValueError, match="none of this run's effects"):
        compare_results(jpeg, _result(BASE))
    for key, value in (("frames", 40), ("seed", 3)):
        with pytest.raises(ValueError, match=f"{key}={value}"):
            check_comparable(_result(RUN), _result(BASE, **{key: value}))
    with pytest.raises(ValueError, match="sequences"):
        check_comparable(_result({"a": RUN["a"]}), _result(BASE))
    with pytest.raises(ValueError, match="no results in"):
        load_result(tmp_path)
    (tmp_path / "robustness.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable"):
        load_result(tmp_path)
    (tmp_path / "robustness.json").write_text(json.dumps(_result(BASE)))
    assert load_result(tmp_path)["sequences"] == ["a", "b", "c"]


def test_summary_rows_standard_error_of_the_change_from_lossless():
    lossless = _result(BASE)
    jpeg = _result(RUN, effect="jpeg", severity=1.0)["variants"][0]
    result = dict(lossless, variants=lossless["variants"] + [jpeg], severities=[1.0])
    row = summary_rows(result)[1]
    # pairs with both values: car +1, +2, +6 and pedestrian a -4: mean 5 / 4, worst -4
    diffs = [1.0, 2.0, 6.0, -4.0]
    assert row["mean_delta"]["1"] == pytest.approx(1.25)
    assert row["delta_se"]["1"] == pytest.approx(mean_and_se(diffs)[1])
    assert row["delta_se"]["1"] == pytest.approx(math.sqrt(
        sum((d - 1.25) ** 2 for d in diffs) / 3 / 4))
    assert delta_cell(row, "1") == f"+1.2 ±{row['delta_se']['1']:.1f} (-4.0)"
    assert delta_cell(row, "2") == ""


@pytest.mark.parametrize("variant, problem", [
    ({"effect": "jpeg"}, "severity"),
    ({"effect": "jpeg", "severity": 1, "metrics": {"car": {"HOTA": "high"}},
      "per_sequence": {}}, "metrics"),
    ({"effect": "jpeg", "severity": 1, "metrics": {"car": {"HOTA": 1.0}},
      "per_sequence": {"a": {"car": [1]}}}, "per_sequence"),
    ("jpeg", "effect"),
])
def test_a_malformed_result_is_refused_with_what_is_wrong(tmp_path, variant, problem):
    (tmp_path / "robustness.json").write_text(json.dumps({"variants": [variant]}))
    with pytest.raises(ValueError, match=f"variant 0: .*{problem}"):
        load_result(tmp_path / "robustness.json")


def test_classes_missing_from_the_baseline_are_left_out():
    base = _result(BASE)
    del base["variants"][0]["metrics"]["pedestrian"]
    assert [r["class"] for r in compare_results(_result(RUN), base)] == ["car"]
    del base["variants"][0]["metrics"]["car"]
    with pytest.raises(ValueError, match="none of this run's"):
        compare_results(_result(RUN), base)


# a second set of drives: car -2, +1; pedestrian +3, +2
BASE2 = {"a": {"car": 50.0, "pedestrian": 30.0}, "b": {"car": 40.0, "pedestrian": 20.0}}
RUN2 = {"a": {"car": 48.0, "pedestrian": 33.0}, "b": {"car": 41.0, "pedestrian": 22.0}}


def test_pooled_over_two_sets_by_hand(tmp_path):
    rows = pooled_comparison([("set1", _result(BASE), _result(RUN)),
                              ("set2", _result(BASE2, gt="g2"), _result(RUN2, gt="g2"))])
    car, ped = rows
    # car: +1, +2, +6, -2, +1: mean 1.6, sample variance 33.2 / 4
    assert car["drives"] == 5 and car["sets"] == 2
    assert car["paired_mean"] == pytest.approx(1.6)
    assert car["paired_se"] == pytest.approx(math.sqrt(8.3 / 5))
    assert car["baseline_mean"] == pytest.approx((70 + 60 + 80 + 50 + 40) / 5)
    assert car["candidate_mean"] == pytest.approx((71 + 62 + 86 + 48 + 41) / 5)
    assert car["per_set"]["set2"] == [pytest.approx(-0.5), pytest.approx(1.5), 2]
    # pedestrian: set1 only drive a (-4), set2 +3, +2: mean 1/3
    assert ped["drives"] == 3 and ped["paired_mean"] == pytest.approx(1 / 3)
    assert ped["per_set"]["set1"] == [pytest.approx(-4.0), None, 1]
    assert car["verdict"] == ped["verdict"] == "unresolved"
    json.dumps(rows, allow_nan=False)
    table = pooled_markdown(rows)
    assert "| lossless | 0 | car | 5 (2) | 60.0 | 61.6 | +1.6 ±1.3 | unresolved |" in table
    assert "set1 -4.0; set2 +2.5 ±0.5" in table
    assert plot_pooled(rows, tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("mean, se, expected", [
    (5.1, 0.05, "better"), (-3.0, 1.0, "worse"), (2.0, 1.0, "unresolved"),
    (-2.0, 1.0, "unresolved"), (0.0, 0.0, "unresolved"), (4.0, None, "too few drives")])
def test_verdict_at_twice_the_standard_error(mean, se, expected):
    assert verdict(mean, se) == expected


def test_pooled_refuses_a_pair_of_other_drives_naming_it():
    with pytest.raises(ValueError, match="set2: the baseline was scored on other drives"):
        pooled_comparison([("set1", _result(BASE), _result(RUN)),
                           ("set2", _result(BASE2, gt="g2"), _result(RUN2, gt="g3"))])
    with pytest.raises(ValueError, match="no pair has"):
        pooled_comparison([("s", _result(BASE), _result(RUN, effect="jpeg", severity=1.0))])


def _accuracy_json(per_drive, effect="jpeg", severity=1.0, **extra) -> dict:
    return {"checkpoint": "c.pt", "checkpoint_sha256": "ab", "rows": [],
            "metrics": {"car": {"HOTA": 70.0}, "pedestrian": {"HOTA": 50.0}},
            "per_sequence": per_drive, "effect": effect, "severity": severity,
            "sequences": sorted(per_drive), "frames": 0, "seed": 0, "gt_sha256": "h", **extra}


def test_an_accuracy_result_loads_as_one_variant_and_pools_with_robustness(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "base" / "accuracy.json").write_text(json.dumps(_accuracy_json(BASE2)))
    (tmp_path / "run" / "accuracy.json").write_text(json.dumps(_accuracy_json(RUN2)))
    acc = load_result(tmp_path / "base")
    assert [(v["effect"], v["severity"]) for v in acc["variants"]] == [("jpeg", 1.0)]
    assert acc["classes"] == ["car", "pedestrian"] and acc["checkpoint_sha256"] == "ab"
    rob = (_result(BASE, effect="jpeg", severity=1.0, frames=0),
           _result(RUN, effect="jpeg", severity=1.0, frames=0))
    (car, _ped) = pooled_comparison([("rob", *rob), ("acc", acc, load_result(tmp_path / "run"))])
    assert car["drives"] == 5 and car["paired_mean"] == pytest.approx(1.6)


def test_an_old_or_ambiguous_accuracy_result_is_refused(tmp_path):
    old = _accuracy_json(BASE2)
    del old["effect"], old["gt_sha256"]
    (tmp_path / "accuracy.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="without effect.*run `stemseg accuracy` again"):
        load_result(tmp_path)
    (tmp_path / "robustness.json").write_text(json.dumps(_result(BASE)))
    with pytest.raises(ValueError, match="two results in"):
        load_result(tmp_path)
