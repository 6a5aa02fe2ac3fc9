"""DAVIS J&F through TrackEval on a tiny fixture (2 sequences x 4 frames, 32x48)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stemseg_core.evaluation.davis_jf import evaluate_davis, write_davis_masks
from stemseg_core.evaluation.trackeval_kitti import EvaluationError
from stemseg_core.evaluation.trackeval_runner import run_trackeval
from stemseg_core.inference.types import FrameResult, TrackedInstance

H, W, T = 32, 48, 4


def _label(seq: int, t: int) -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    lab[4:14, 3 + 3 * t:15 + 3 * t] = 1
    lab[18:30, 30 - 2 * t - seq:38 - 2 * t] = 2
    return lab


def _write(folder, labels):
    folder.mkdir(parents=True, exist_ok=True)
    for t, lab in enumerate(labels):
        img = Image.fromarray(lab, mode="P")
        img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        img.save(folder / f"{t:05d}.png")


@pytest.fixture
def davis(tmp_path):
    gt = tmp_path / "DAVIS" / "Annotations_unsupervised" / "480p"
    for s in range(2):
        _write(gt / f"seq{s}", [_label(s, t) for t in range(T)])
    return tmp_path / "DAVIS"


def test_perfect_and_from_frame_results(davis, tmp_path):
    res = tmp_path / "res"
    for s in range(2):
        frames = []
        for t in range(T):
            lab = _label(s, t)
            insts = [TrackedInstance(10 + k, 1, "object", 0.9, lab == k) for k in (1, 2)]
            frames.append(FrameResult(t, t, (H, W), insts))
        write_davis_masks(res / f"seq{s}", frames)
    out = evaluate_davis(davis, res)
    assert out["J&F"] == pytest.approx(100.0)
    assert out["J-Mean"] == pytest.approx(100.0) and out["F-Mean"] == pytest.approx(100.0)
    assert np.array(Image.open(res / "seq0" / "00000.png")).ndim == 2


def test_worse_results_score_lower(davis, tmp_path):
    res = tmp_path / "res"
    for s in range(2):
        labs = [_label(s, t) for t in range(T)]
        labs[1] = np.where(labs[1] == 2, 0, labs[1]).astype(np.uint8)  # object 2 missed once
        if s == 0:
            labs[3][:] = 0  # a frame without any object
        _write(res / f"seq{s}", labs)
    out = evaluate_davis(davis, res)
    assert 50 < out["J&F"] < 100
    assert out["J-Recall"] < 100


def test_errors(davis, tmp_path):
    with pytest.raises(EvaluationError, match="results folder not found"):
        evaluate_davis(davis, tmp_path / "none")
    res = tmp_path / "res"
    _write(res / "seq0", [_label(0, t) for t in range(T)])
    with pytest.raises(EvaluationError, match="seq1"):
        evaluate_davis(davis, res)
    _write(res / "seq1", [_label(1, t) for t in range(T - 1)])
    with pytest.raises(EvaluationError, match="3 files"):
        evaluate_davis(davis, res)


def test_trackeval_failures_name_what_trackeval_said():
    import trackeval

    def broken_dataset():
        print("reading seq7")
        raise trackeval.utils.TrackEvalException("GT file missing")

    with pytest.raises(EvaluationError, match=r"TrackEval: GT file missing \[reading seq7\]"):
        run_trackeval(broken_dataset, [])
