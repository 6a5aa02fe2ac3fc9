"""`stemseg robustness` on the tiny KITTI MOTS fixture: a GT-echoing tracker and a tiny model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
import kitti_mots_fixture as fx  # noqa: E402

import stemseg_core.inference.tracker  # noqa: E402
from stemseg_core.cli import main  # noqa: E402

EchoTracker = fx.EchoTracker


@pytest.fixture
def echo(monkeypatch):
    EchoTracker.made = []
    monkeypatch.setattr(stemseg_core.inference.tracker, "StreamingTracker", EchoTracker)
    return EchoTracker


def test_lossless_first_every_effect_and_severity_then_files(tmp_path, echo, capsys):
    data = fx.build(tmp_path / "kitti")
    out = tmp_path / "rob"
    rc = main(["robustness", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
               "--out", str(out), "--effects", "exposure", "jpeg", "--severities", "1", "3",
               "--frames", "4", "--backend", "torch"])
    assert rc == 0
    res = json.loads((out / "robustness.json").read_text())
    assert [(v["effect"], v["severity"]) for v in res["variants"]] == [
        ("lossless", 0.0), ("exposure", 1.0), ("exposure", 3.0), ("jpeg", 1.0), ("jpeg", 3.0)]
    # a perfect tracker scores 100 only if the ground truth was cut to the 4 tracked frames
    for v in res["variants"]:
        assert v["metrics"]["car"]["HOTA"] == pytest.approx(100.0)
        assert v["metrics"]["pedestrian"]["HOTA"] == pytest.approx(100.0)
    # per drive: 100, or None where a drive has no ground truth of the class (never 0)
    for per in res["variants"][0]["per_sequence"].values():
        assert all(h is None or h == pytest.approx(100.0) for h in per.values())
    (tracker,) = echo.made
    # the node's CPU defaults first, the user's --backend last
    assert tracker.overrides[:3] == ["inference.backend=openvino", "inference.precision=bf16",
                                     "inference.flip_test=false"]
    assert tracker.overrides[-1] == "inference.backend=torch"
    # 5 variants x sequences, 4 frames each; exposure severity 3 changes what the tracker sees
    n_seq = len(res["sequences"])
    assert len(tracker.runs) == 5 * n_seq and all(len(r) == 4 for r in tracker.runs)
    lossless, exp3 = tracker.runs[0], tracker.runs[2 * n_seq]
    assert not np.allclose(lossless, exp3, atol=1.0)
    table = (out / "robustness.md").read_text()
    assert table.splitlines()[2].startswith("| lossless | 100.0")
    assert "| jpeg |" in table and "+0.0 ±0.0 (+0.0)" in table
    assert (out / "robustness.png").stat().st_size > 1000
    assert not (out / "frames").exists()  # corrupted frames are removed unless --keep-frames
    assert "lossless" in capsys.readouterr().out


def test_rejects_bad_severity_and_unknown_effect(tmp_path, echo, capsys):
    data = fx.build(tmp_path / "kitti")
    assert main(["robustness", "--data", str(data), "--split", "val", "--out",
                 str(tmp_path / "o"), "--severities", "4"]) == 2
    assert "severities" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["robustness", "--data", str(data), "--split", "val", "--out",
              str(tmp_path / "o"), "--effects", "fog"])


def test_tiny_model_end_to_end(tmp_path, tiny_checkpoint):
    data = fx.build(tmp_path / "kitti")
    out = tmp_path / "rob"
    rc = main(["robustness", "--checkpoint", str(tiny_checkpoint), "--data", str(data),
               "--seq", "0000", "--out", str(out), "--effects", "noise", "chroma",
               "--severities", "2", "--frames", "5", "--backend", "torch", "--precision",
               "fp32", "--set", "inference.max_instances=4"])
    assert rc == 0
    res = json.loads((out / "robustness.json").read_text())
    assert len(res["variants"]) == 3 and res["frames"] == 5
    assert set(res["variants"][1]["metrics"]) == {"car", "pedestrian"}


def test_baseline_compared_drive_by_drive_and_refused_when_not_comparable(tmp_path, echo,
                                                                          capsys):
    data = fx.build(tmp_path / "kitti")
    args = ["robustness", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
            "--effects", "jpeg", "--severities", "1", "--frames", "4"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--baseline", str(tmp_path / "a")]) == 0
    res = json.loads((tmp_path / "b" / "robustness.json").read_text())
    rows = res["baseline"]["rows"]
    # a perfect tracker twice: every variant and class unchanged, drive by drive
    assert [(r["effect"], r["class"]) for r in rows] == [
        ("lossless", "car"), ("lossless", "pedestrian"), ("jpeg", "car"), ("jpeg", "pedestrian")]
    assert all(r["change"] == 0 and r["paired_mean"] == 0 and r["drives"] >= 1 for r in rows)
    assert "Against the baseline" in (tmp_path / "b" / "robustness.md").read_text()
    assert "Against the baseline" in capsys.readouterr().out
    made = len(echo.made)
    # other frames: refused before any tracker is built
    assert main(args[:-1] + ["8", "--out", str(tmp_path / "c"), "--baseline",
                             str(tmp_path / "a")]) == 2
    assert "frames=4" in capsys.readouterr().err and len(echo.made) == made
    assert main(args + ["--out", str(tmp_path / "c"), "--baseline", str(tmp_path / "nope")]) == 2
    assert "no result at" in capsys.readouterr().err


def test_a_baseline_with_nothing_in_common_still_writes_the_run(tmp_path, echo, capsys):
    data = fx.build(tmp_path / "kitti")
    args = ["robustness", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
            "--effects", "jpeg", "--severities", "1", "--frames", "4"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    res_a = json.loads((tmp_path / "a" / "robustness.json").read_text())
    for v in res_a["variants"]:  # a model of other classes
        v["metrics"] = {"cyclist": {"HOTA": 50.0}}
    (tmp_path / "a" / "robustness.json").write_text(json.dumps(res_a))
    assert main(args + ["--out", str(tmp_path / "b"), "--baseline", str(tmp_path / "a")]) == 0
    assert "no comparison" in capsys.readouterr().err
    res_b = json.loads((tmp_path / "b" / "robustness.json").read_text())
    assert "baseline" not in res_b and len(res_b["variants"]) == 2


def test_a_camera_pipeline_is_one_variant(tmp_path, echo, capsys):
    data = fx.build(tmp_path / "kitti")
    out = tmp_path / "rob"
    assert main(["robustness", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
                 "--out", str(out), "--effects", "exposure", "exposure+jpeg", "--severities",
                 "3", "--frames", "3"]) == 0
    res = json.loads((out / "robustness.json").read_text())
    assert [v["effect"] for v in res["variants"]] == ["lossless", "exposure", "exposure+jpeg"]
    n_seq = len(res["sequences"])
    runs = echo.made[0].runs
    # the pipeline's frames: the exposure variant's, then JPEG (close to them, not equal)
    exposed, piped = runs[n_seq], runs[2 * n_seq]
    assert np.allclose(exposed, piped, atol=3.0) and not np.array_equal(exposed, piped)
    assert "| exposure+jpeg |" in (out / "robustness.md").read_text()
    with pytest.raises(SystemExit):
        main(["robustness", "--data", str(data), "--effects", "exposure+fog"])
    assert "unknown effect 'fog'" in capsys.readouterr().err
