"""`stemseg infer` and `stemseg evaluate` end to end on a tiny KITTI MOTS fixture."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
import kitti_mots_fixture as fx  # noqa: E402

import stemseg_core.inference.tracker  # noqa: E402
from stemseg_core.cli import main  # noqa: E402
from stemseg_core.inference.types import FrameResult, TrackedInstance  # noqa: E402

KEYS = ["HOTA", "DetA", "AssA", "sMOTSA", "MOTSA", "MOTSP", "IDSW", "IDF1"]


class FakeTracker:
    """Streams the fixture's GT back with a 2-frame delay; reset() moves to the next sequence."""

    instances: list[FakeTracker] = []
    min_track_length = 0  # stands in for the checkpoint's inference.min_track_length

    def __init__(self):
        self.seq_index = -1
        self.pending: list[FrameResult] = []
        self.frames = 0
        self.calls: list[str] = []
        self.class_names = ["background", "car", "pedestrian"]
        self.cfg = types.SimpleNamespace(
            inference=types.SimpleNamespace(min_track_length=self.min_track_length,
                                            min_track_length_per_class={}))
        FakeTracker.instances.append(self)

    @classmethod
    def from_checkpoint(cls, path, device="auto", overrides=None, *, allow_pickle=False,
                        sha256=None):
        return cls()

    def reset(self, keep_ids=False):
        self.calls.append("reset")
        self.seq_index += 1
        self.pending, self.frames = [], 0

    def push(self, image, stamp):
        assert image.dtype == np.uint8 and image.shape == (fx.H, fx.W, 3)
        self.calls.append("push")
        objs = fx.gt_objects(fx.SEQS[self.seq_index])[self.frames]
        names = {1: "car", 2: "pedestrian"}
        insts = [TrackedInstance(oid, cid, names[cid], 0.9, m) for oid, cid, m in objs
                 if cid != 10]
        self.pending.append(FrameResult(self.frames, stamp, (fx.H, fx.W), insts))
        self.frames += 1
        out, self.pending = self.pending[:-2], self.pending[-2:]
        return out

    def flush(self):
        self.calls.append("flush")
        out, self.pending = self.pending, []
        return out


@pytest.fixture
def fake_tracker(monkeypatch):
    FakeTracker.instances = []
    monkeypatch.setattr(stemseg_core.inference.tracker, "StreamingTracker", FakeTracker)
    return FakeTracker


def test_evaluate_command_writes_json_and_plot(tmp_path, capsys):
    gt = fx.build(tmp_path / "kitti", images=False)
    res = tmp_path / "res"
    res.mkdir()
    for s in fx.SEQS:
        fx.write_txt(res / f"{s}.txt", {t: [o for o in v if o[1] != 10]
                                        for t, v in fx.gt_objects(s).items()})
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--split", "val"]) == 0
    metrics = json.loads((res / "metrics.json").read_text())
    assert list(metrics) == ["car", "pedestrian"]
    for cls in metrics:
        assert list(metrics[cls]) == KEYS
        assert metrics[cls]["HOTA"] == pytest.approx(100) and metrics[cls]["IDSW"] == 0
    assert (res / "metrics.png").stat().st_size > 1000
    assert "sMOTSA" in capsys.readouterr().out
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--classes", "car",
                 "--no-plot"]) == 0
    assert list(json.loads((res / "metrics.json").read_text())) == ["car"]


def test_evaluate_missing_results_dir(tmp_path, capsys):
    gt = fx.build(tmp_path / "kitti", images=False)
    missing = tmp_path / "no_such_results"
    assert main(["evaluate", "--gt", str(gt), "--results", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "results folder not found" in err and str(missing) in err
    missing.mkdir()
    assert main(["evaluate", "--gt", str(gt), "--results", str(missing)]) == 2
    assert str(missing / "0000.txt") in capsys.readouterr().err
    assert main(["evaluate", "--gt", str(gt), "--results", str(missing),
                 "--classes", "bike"]) == 2


def test_infer_with_streaming_tracker_contract(tmp_path, fake_tracker):
    data = fx.build(tmp_path / "kitti")
    out = tmp_path / "out"
    rc = main(["infer", "--checkpoint", str(tmp_path / "x.pt"), "--data", str(data),
               "--split", "val", "--out", str(out), "--overlays", "--video"])
    assert rc == 0
    (tracker,) = fake_tracker.instances
    assert tracker.calls.count("reset") >= 2 and tracker.calls.count("flush") == 2
    assert tracker.calls.count("push") == 2 * fx.FRAMES
    for s in fx.SEQS:
        assert (out / f"{s}.txt").is_file()
        pngs = sorted((out / "overlays" / s).glob("*.png"))
        assert [p.name for p in pngs] == [f"{t:06d}.png" for t in range(fx.FRAMES)]
        assert (out / "overlays" / f"{s}.mp4").is_file()
    assert main(["evaluate", "--gt", str(data), "--results", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["car"]["sMOTSA"] == pytest.approx(100)
    assert metrics["pedestrian"]["HOTA"] == pytest.approx(100)


def test_infer_min_track_length_from_checkpoint(tmp_path, fake_tracker, monkeypatch):
    """The checkpoint's inference.min_track_length applies unless --min-track-length is given."""
    data = fx.build(tmp_path / "kitti")

    def lines(out):
        return (out / f"{fx.SEQS[0]}.txt").read_text().splitlines()

    assert main(["infer", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
                 "--out", str(tmp_path / "all")]) == 0
    n_all = len(lines(tmp_path / "all"))
    assert n_all > 0
    # Every fixture track spans at most fx.FRAMES frames: a longer minimum drops them all ...
    monkeypatch.setattr(fake_tracker, "min_track_length", fx.FRAMES + 1)
    assert main(["infer", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
                 "--out", str(tmp_path / "none")]) == 0
    assert lines(tmp_path / "none") == []
    # ... and an explicit flag wins over the checkpoint's value.
    assert main(["infer", "--checkpoint", "x.pt", "--data", str(data), "--split", "val",
                 "--out", str(tmp_path / "flag"), "--min-track-length", "0"]) == 0
    assert len(lines(tmp_path / "flag")) == n_all


def test_infer_missing_sequence(tmp_path, fake_tracker, capsys):
    data = fx.build(tmp_path / "kitti", images=False)
    assert main(["infer", "--checkpoint", "x.pt", "--data", str(data), "--seq", "0042",
                 "--out", str(tmp_path / "o")]) == 2
    assert "0042" in capsys.readouterr().err


def test_infer_end_to_end_tiny_model(tmp_path, tiny_checkpoint):
    ckpt = tiny_checkpoint
    data = fx.build(tmp_path / "kitti")
    out = tmp_path / "out"
    rc = main(["infer", "--checkpoint", str(ckpt), "--data", str(data), "--seq", "0001",
               "--out", str(out), "--device", "cpu", "--overlays",
               "--set", "inference.max_instances=4"])
    assert rc == 0
    assert (out / "0001.txt").is_file()
    assert len(list((out / "overlays" / "0001").glob("*.png"))) == fx.FRAMES
    assert main(["evaluate", "--gt", str(data), "--results", str(out), "--seq", "0001",
                 "--no-plot"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"car", "pedestrian"} and list(metrics["car"]) == KEYS


def test_evaluate_davis_format(tmp_path):
    from PIL import Image

    for root in ("gt", "res"):
        d = tmp_path / root / "seqA"
        d.mkdir(parents=True)
        for t in range(3):
            lab = np.zeros((24, 32), np.uint8)
            lab[4:12, 2 + 2 * t:12 + 2 * t] = 1
            Image.fromarray(lab, mode="L").save(d / f"{t:05d}.png")
    assert main(["evaluate", "--gt", str(tmp_path / "gt"), "--results", str(tmp_path / "res"),
                 "--format", "davis"]) == 0
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    assert metrics["J&F"] == pytest.approx(100)
    assert (tmp_path / "res" / "metrics.png").is_file()
