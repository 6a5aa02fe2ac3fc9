"""Recall / false positives by mask area: hand-built frames with known matches."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stemseg_core.cli import main
from stemseg_core.data.rle import mask_to_kitti_string
from stemseg_core.evaluation.size_breakdown import bin_labels, size_breakdown

H, W = 40, 80


def rect(y0: int, x0: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y0 + h, x0:x0 + w] = True
    return m


def line(frame: int, oid: int, cls: int, mask: np.ndarray) -> str:
    return f"{frame} {oid} {cls} {H} {W} {mask_to_kitti_string(mask)}\n"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    gt = tmp_path / "gt"
    (gt / "instances_txt").mkdir(parents=True)
    res = tmp_path / "res"
    res.mkdir()
    small, mid, car = rect(0, 0, 5, 8), rect(10, 0, 10, 15), rect(20, 40, 20, 40)
    ignore = rect(0, 60, 10, 20)
    (gt / "instances_txt" / "0000.txt").write_text(
        line(0, 2001, 2, small) + line(0, 2002, 2, mid) + line(0, 1001, 1, car)
        + line(0, 10000, 10, ignore) + line(1, 2002, 2, mid))
    (gt / "val.seqmap").write_text("0000 empty 000000 000001\n")
    (res / "0000.txt").write_text(
        line(0, 1, 2, mid)                       # TP, 150 px
        + line(0, 2, 2, rect(2, 4, 5, 8))        # 40 px, IoU 12/68 with `small`: miss + FP
        + line(0, 3, 2, rect(0, 62, 8, 10))      # inside the ignore region: left out
        + line(0, 4, 1, car)                     # car TP, 800 px
        + line(1, 1, 1, mid))                    # wrong class: car FP, pedestrian miss
    return gt, res


def test_recall_and_false_positives_by_area(tree):
    gt, res = tree
    table = size_breakdown(gt / "instances_txt", res, ["0000"], {"car": 1, "pedestrian": 2},
                           bins=(0, 50, 100, 200, 400, 800))
    assert [r["area"] for r in table["pedestrian"]] == bin_labels((0, 50, 100, 200, 400, 800))
    ped = {r["area"]: r for r in table["pedestrian"]}
    assert (ped["0-50"]["gt"], ped["0-50"]["recall"]) == (1, 0.0)
    assert (ped["0-50"]["predictions"], ped["0-50"]["false_positive_share"]) == (1, 100.0)
    assert (ped["100-200"]["gt"], ped["100-200"]["recall"]) == (2, 50.0)  # frame 1 missed
    assert (ped["100-200"]["predictions"], ped["100-200"]["false_positive_share"]) == (1, 0.0)
    assert ped["400-800"] == {"area": "400-800", "gt": 0, "recall": None, "predictions": 0,
                              "false_positive_share": None}
    car = {r["area"]: r for r in table["car"]}
    assert (car[">=800"]["gt"], car[">=800"]["recall"]) == (1, 100.0)
    assert (car["100-200"]["predictions"], car["100-200"]["false_positive_share"]) == (1, 100.0)


def test_cli_by_size_writes_json(tree, capsys):
    gt, res = tree
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--by-size",
                 "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "pedestrian: recall at mask IoU >= 0.5 by area" in out
    table = json.loads((res / "size_breakdown.json").read_text())
    assert {r["area"]: r["recall"] for r in table["pedestrian"]}["100-200"] == 50.0
    assert (res / "metrics.json").is_file()
