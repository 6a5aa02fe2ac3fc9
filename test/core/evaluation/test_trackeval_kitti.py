"""TrackEval KITTI MOTS wrapper on a tiny fixture (2 sequences x 6 frames, 40x60)."""
from __future__ import annotations

import contextlib
import io
import shutil

import kitti_mots_fixture as fx
import numpy as np
import pytest

from stemseg_core.evaluation.trackeval_kitti import (
    EvaluationError,
    evaluate_kitti_mots,
    extract_kitti_metrics,
    read_seqmap,
)

KEYS = ["HOTA", "DetA", "AssA", "sMOTSA", "MOTSA", "MOTSP", "IDSW", "IDF1"]


@pytest.fixture
def gt(tmp_path):
    return fx.build(tmp_path / "kitti", images=False)


def _gt_as_results(path):
    path.mkdir(parents=True, exist_ok=True)
    for s in fx.SEQS:
        objs = {t: [o for o in v if o[1] != 10] for t, v in fx.gt_objects(s).items()}
        fx.write_txt(path / f"{s}.txt", objs)
    return path


def _perturbed_results(path):
    """Drop the pedestrian in frames 2-3 of 0000, swap the two cars' ids from frame 3 of 0001,
    shrink a car mask, and add a false positive."""
    path.mkdir(parents=True, exist_ok=True)
    for s in fx.SEQS:
        objs = {}
        for t, v in fx.gt_objects(s).items():
            out = []
            for oid, cid, m in v:
                if cid == 10:
                    continue
                if s == "0000" and cid == 2 and t in (2, 3):
                    continue
                if s == "0001" and t >= 3 and oid in (1001, 1002):
                    oid = 2003 - oid
                if s == "0000" and cid == 1 and t == 4:
                    m = m.copy()
                    m[:, : np.flatnonzero(m.any(0))[0] + 3] = False
                out.append((oid % 1000 + 10 * cid, cid, m))
            if s == "0001" and t == 5:
                fp = np.zeros((fx.H, fx.W), bool)
                fp[36:40, 50:58] = True
                out.append((99, 2, fp))
            objs[t] = out
        fx.write_txt(path / f"{s}.txt", objs)
    return path


def test_gt_as_results_is_perfect(gt, tmp_path):
    res = evaluate_kitti_mots(gt, _gt_as_results(tmp_path / "res"), split="val")
    assert set(res) == {"car", "pedestrian"}
    for cls in ("car", "pedestrian"):
        assert list(res[cls]) == KEYS
        for k in KEYS:
            assert res[cls][k] == (0 if k == "IDSW" else pytest.approx(100.0)), (cls, k)
        assert isinstance(res[cls]["IDSW"], int)


def _trackeval_directly(gt, results, tmp_path):
    """Independent path: TrackEval's own layout, seqmap reader and defaults."""
    import trackeval

    gt_fol = tmp_path / "te_gt"
    (gt_fol / "label_02").mkdir(parents=True)
    for s in fx.SEQS:
        shutil.copy(gt / "instances_txt" / f"{s}.txt", gt_fol / "label_02" / f"{s}.txt")
    shutil.copy(gt / "val.seqmap", gt_fol / "evaluate_mots.seqmap.val")
    trk = tmp_path / "te_trk" / "mine" / "data"
    trk.mkdir(parents=True)
    for s in fx.SEQS:
        shutil.copy(results / f"{s}.txt", trk / f"{s}.txt")
    ev_cfg = trackeval.Evaluator.get_default_eval_config()
    ev_cfg.update({"PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                   "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                   "LOG_ON_ERROR": None})
    ds_cfg = trackeval.datasets.KittiMOTS.get_default_dataset_config()
    ds_cfg.update({"GT_FOLDER": str(gt_fol), "TRACKERS_FOLDER": str(tmp_path / "te_trk"),
                   "PRINT_CONFIG": False})
    with contextlib.redirect_stdout(io.StringIO()):
        out, _ = trackeval.Evaluator(ev_cfg).evaluate(
            [trackeval.datasets.KittiMOTS(ds_cfg)],
            [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()])
    comb = out["KittiMOTS"]["mine"]["COMBINED_SEQ"]
    return comb


def test_perturbed_matches_trackeval_direct(gt, tmp_path):
    results = _perturbed_results(tmp_path / "res")
    ours = evaluate_kitti_mots(gt, results, split="val")
    comb = _trackeval_directly(gt, results, tmp_path)
    for cls in ("car", "pedestrian"):
        assert ours[cls]["HOTA"] == pytest.approx(100 * np.mean(comb[cls]["HOTA"]["HOTA"]))
        assert ours[cls]["DetA"] == pytest.approx(100 * np.mean(comb[cls]["HOTA"]["DetA"]))
        assert ours[cls]["AssA"] == pytest.approx(100 * np.mean(comb[cls]["HOTA"]["AssA"]))
        assert ours[cls]["sMOTSA"] == pytest.approx(100 * comb[cls]["CLEAR"]["sMOTA"])
        assert ours[cls]["MOTSA"] == pytest.approx(100 * comb[cls]["CLEAR"]["MOTA"])
        assert ours[cls]["MOTSP"] == pytest.approx(100 * comb[cls]["CLEAR"]["MOTP"])
        assert ours[cls]["IDSW"] == int(comb[cls]["CLEAR"]["IDSW"])
        assert ours[cls]["IDF1"] == pytest.approx(100 * comb[cls]["Identity"]["IDF1"])
        assert ours[cls]["HOTA"] < 100
    assert ours["car"]["IDSW"] >= 1
    assert ours["pedestrian"]["sMOTSA"] < 100
    assert extract_kitti_metrics(comb, ["car"])["car"] == ours["car"]


def test_sequences_seqmap_and_classes(gt, tmp_path):
    res = _gt_as_results(tmp_path / "res")
    (res / "0000.txt").unlink()
    one = tmp_path / "one.seqmap"
    one.write_text("0001\n")  # name only, one line: length from the GT's last frame
    assert read_seqmap(one) == {"0001": None}
    out = evaluate_kitti_mots(gt, res, seqmap=one, classes=["car"])
    assert list(out) == ["car"] and out["car"]["HOTA"] == pytest.approx(100)
    out = evaluate_kitti_mots(gt, res, sequences=["0001"])
    assert out["pedestrian"]["sMOTSA"] == pytest.approx(100)
    with pytest.raises(ValueError, match="bicycle"):
        evaluate_kitti_mots(gt, res, sequences=["0001"], classes=["bicycle"])


def test_clear_errors(gt, tmp_path):
    res = _gt_as_results(tmp_path / "res")
    with pytest.raises(EvaluationError, match=str(tmp_path / "nope")):
        evaluate_kitti_mots(gt, tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="ground-truth folder not found"):
        evaluate_kitti_mots(tmp_path / "nogt", res)
    with pytest.raises(EvaluationError, match="test.seqmap"):
        evaluate_kitti_mots(gt, res, split="test")
    with pytest.raises(EvaluationError, match="seqmap not found"):
        evaluate_kitti_mots(gt, res, seqmap=tmp_path / "x.seqmap")
    (res / "0001.txt").unlink()
    with pytest.raises(EvaluationError, match="0001.txt"):
        evaluate_kitti_mots(gt, res)
    with pytest.raises(EvaluationError, match="ground-truth file"):
        evaluate_kitti_mots(gt, res, sequences=["0007"])


def test_bad_results_reported(gt, tmp_path):
    res = _gt_as_results(tmp_path / "res")
    objs = fx.gt_objects("0000")
    car = objs[0][0][2]
    fx.write_txt(res / "0000.txt", {0: [(1, 1, car), (2, 2, car)]})  # overlapping masks
    with pytest.raises(EvaluationError, match="overlapping masks"):
        evaluate_kitti_mots(gt, res)
    fx.write_txt(res / "0000.txt", {9: [(1, 1, car)]})  # frame beyond the sequence
    with pytest.raises(EvaluationError, match="frame 9"):
        evaluate_kitti_mots(gt, res)
