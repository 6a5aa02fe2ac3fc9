"""`stemseg compare`: pairs of results pooled drive by drive, files, refusals and the gate."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
import kitti_mots_fixture as fx  # noqa: E402

from stemseg_core.cli import main  # noqa: E402


def _write(path: Path, per_drive: dict, *, gt="g", effect="lossless") -> Path:
    path.mkdir(parents=True)
    variant = {"effect": effect, "severity": 0.0 if effect == "lossless" else 1.0,
               "metrics": {"car": {"HOTA": 0.0}}, "per_sequence": per_drive}
    (path / "robustness.json").write_text(json.dumps({
        "variants": [variant], "sequences": sorted(per_drive), "frames": 0, "seed": 0,
        "classes": ["car"], "gt_sha256": gt, "checkpoint_sha256": path.name}))
    return path


def _drives(values):
    return {f"{i:04d}": {"car": v} for i, v in enumerate(values)}


def test_two_sets_pooled_written_and_gated(tmp_path, capsys):
    # set a: every drive 3 worse; set b: 2 and 4 worse: pooled -3 ± sqrt(0.5 / 5), resolved
    base = [_write(tmp_path / "base_a", _drives([60, 70, 80]), gt="a"),
            _write(tmp_path / "base_b", _drives([50, 55]), gt="b")]
    cand = [_write(tmp_path / "new_a", _drives([57, 67, 77]), gt="a"),
            _write(tmp_path / "new_b", _drives([48, 51]), gt="b")]
    args = ["compare", "--baseline", *map(str, base), "--candidate", *map(str, cand),
            "--out", str(tmp_path / "cmp")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "-3.0 ±0.3" in out and "worse" in out
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    (row,) = res["rows"]
    assert row["drives"] == 5 and row["verdict"] == "worse"
    assert row["per_set"]["new_b"][:2] == [pytest.approx(-3.0), pytest.approx(1.0)]
    assert [s["candidate_sha256"] for s in res["sets"]] == ["new_a", "new_b"]
    assert "| lossless | 0 | car | 5 (2) |" in (tmp_path / "cmp" / "compare.md").read_text()
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000
    assert main(args + ["--fail-on-worse"]) == 1
    assert "resolved worse: lossless 0 car" in capsys.readouterr().err
    # the same comparison the other way round: better, and the gate passes
    assert main(["compare", "--baseline", *map(str, cand), "--candidate", *map(str, base),
                 "--fail-on-worse"]) == 0


def test_refusals_name_what_is_wrong(tmp_path, capsys):
    a = _write(tmp_path / "a", _drives([60, 70]), gt="a")
    b = _write(tmp_path / "b", _drives([61, 72]), gt="b")
    assert main(["compare", "--baseline", str(a), "--candidate", str(a), str(b)]) == 2
    assert "1 baseline result(s) but 2 candidate" in capsys.readouterr().err
    assert main(["compare", "--baseline", str(a), "--candidate", str(b)]) == 2
    assert "b: the baseline was scored on other drives" in capsys.readouterr().err
    assert main(["compare", "--baseline", str(a), str(a), "--candidate", str(a), str(a),
                 "--labels", "x", "x"]) == 2
    assert "distinct names" in capsys.readouterr().err
    assert main(["compare", "--baseline", str(tmp_path / "none"), "--candidate", str(a)]) == 2
    assert "no result at" in capsys.readouterr().err
    # the same directory name twice is told apart by position
    assert main(["compare", "--baseline", str(a), str(a), "--candidate", str(a), str(a),
                 "--out", str(tmp_path / "o")]) == 0
    sets = json.loads((tmp_path / "o" / "compare.json").read_text())["sets"]
    assert [s["label"] for s in sets] == ["a#1", "a#2"]


def test_two_robustness_runs_of_the_same_drives_pair(tmp_path, monkeypatch):
    """Real `stemseg robustness` output (a tracker that echoes the ground truth): a result
    carries its ground truth's sha256; other frames give other drives."""
    import stemseg_core.inference.tracker

    monkeypatch.setattr(stemseg_core.inference.tracker, "StreamingTracker", fx.EchoTracker)
    data = fx.build(tmp_path / "kitti")
    run = ["robustness", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
           "--effects", "jpeg", "--severities", "1"]
    assert main(run + ["--frames", "4", "--out", str(tmp_path / "r1")]) == 0
    assert main(run + ["--frames", "4", "--out", str(tmp_path / "r2")]) == 0
    assert main(run + ["--frames", "3", "--out", str(tmp_path / "r3")]) == 0
    r1, r3 = (json.loads((tmp_path / r / "robustness.json").read_text()) for r in ("r1", "r3"))
    assert len(r1["gt_sha256"]) == 64 and r1["gt_sha256"] != r3["gt_sha256"]
    assert main(["compare", "--baseline", str(tmp_path / "r1"), "--candidate",
                 str(tmp_path / "r2"), "--out", str(tmp_path / "c")]) == 0
    rows = json.loads((tmp_path / "c" / "compare.json").read_text())["rows"]
    assert {(r["effect"], r["class"]) for r in rows} == {
        ("lossless", "car"), ("lossless", "pedestrian"), ("jpeg", "car"), ("jpeg", "pedestrian")}
    assert all(r["paired_mean"] == 0 and r["verdict"] == "unresolved" for r in rows)
    # one set scored as one set: its set-level HOTA is the run's own
    hota = {(v["effect"], c): m["HOTA"] for v in r1["variants"] for c, m in v["metrics"].items()}
    assert all(r["baseline_set_hota"] == r["candidate_set_hota"] == hota[r["effect"], r["class"]]
               for r in rows)
