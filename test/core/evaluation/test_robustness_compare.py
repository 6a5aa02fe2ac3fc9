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
)


def _result(per_drive: dict[str, dict[str, float | None]], set_hota=(70.0, 50.0), *,
            effect="lossless", severity=0.0, frames=60, seed=0) -> dict:
    car, ped = set_hota
    variant = {"effect": effect, "severity": severity,
               "metrics": {"car": {"HOTA": car}, "pedestrian": {"HOTA": ped}},
               "per_sequence": per_drive}
    return {"variants": [variant], "sequences": sorted(per_drive), "frames": frames,
            "seed": seed, "classes": ["car", "pedestrian"]}


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
    assert "| lossless | 0 | car | 70.0 | 73.0 | +3.0 | +3.0 ±1.5 (3) | no |" in table
    assert "| pedestrian | 50.0 | 49.0 | -1.0 | (1 drives) | too few drives |" in table


def test_resolved_when_the_change_exceeds_twice_its_error():
    run = {k: {"car": v["car"] + 5.0 + 0.1 * i, "pedestrian": None}
           for i, (k, v) in enumerate(BASE.items())}
    (car, _ped) = compare_results(_result(run), _result(BASE))
    assert car["paired_mean"] == pytest.approx(5.1)
    assert car["paired_se"] == pytest.approx(0.1 / math.sqrt(3))
    assert "| yes |" in comparison_markdown([car])


def test_only_variants_in_both_and_refusals(tmp_path):
    jpeg = _result(RUN, effect="jpeg", severity=1.0)
    with pytest.raises(ValueError, match="none of this run's effects"):
        compare_results(jpeg, _result(BASE))
    for key, value in (("frames", 40), ("seed", 3)):
        with pytest.raises(ValueError, match=f"{key}={value}"):
            check_comparable(_result(RUN), _result(BASE, **{key: value}))
    with pytest.raises(ValueError, match="sequences"):
        check_comparable(_result({"a": RUN["a"]}), _result(BASE))
    with pytest.raises(ValueError, match="no robustness result"):
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
