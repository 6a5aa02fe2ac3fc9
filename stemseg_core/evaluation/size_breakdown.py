"""Detection recall and false positives by object size (KITTI MOTS files), next to TrackEval.

HOTA says how good a tracker is; this says where its misses are. Per class and ground-truth
mask area bin (pixels): how many GT masks there are and the share found, i.e. matched one to
one by a predicted mask of the same class with mask IoU >= ``iou`` in the same frame (the
KITTI MOTS / CLEAR MOT criterion; above 0.5 a match is unique, as masks of a frame do not
overlap). Per predicted-area bin: predictions, and the share of them that match no GT mask.
Predictions lying mostly (> 50 %) in an ignore region (class 10) are left out, as TrackEval
does. Masks stay compressed RLE (pycocotools) throughout.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from stemseg_core.data.safe_names import child_path
from stemseg_core.evaluation.kitti_results import kitti_mots_lines

#: Area bin edges in pixels; the last bin has no upper edge.
DEFAULT_AREA_BINS = (0, 50, 100, 200, 400, 800)
KITTI_IGNORE_CLASS = 10


def _read_rles(path: Path) -> dict[int, list[tuple[int, dict]]]:
    """``{frame: [(class_id, rle), ...]}`` of a KITTI MOTS txt, masks left encoded."""
    out: dict[int, list[tuple[int, dict]]] = {}
    for frame, _oid, cls, h, w, rle in kitti_mots_lines(path):
        out.setdefault(frame, []).append((cls, {"size": [h, w], "counts": rle.encode("ascii")}))
    return out


def bin_labels(bins: Sequence[int]) -> list[str]:
    return [f"{lo}-{hi}" for lo, hi in zip(bins, bins[1:])] + [f">={bins[-1]}"]


def _bin(area: float, bins: Sequence[int]) -> int:
    return max(0, int(np.searchsorted(bins, area, side="right")) - 1)


def size_breakdown(gt_txt_dir: str | Path, results_dir: str | Path, sequences: Iterable[str],
                   classes: dict[str, int], bins: Sequence[int] = DEFAULT_AREA_BINS,
                   iou: float = 0.5) -> dict[str, list[dict]]:
    """``{class name: [{"area", "gt", "recall", "predictions", "false_positive_share"}, ...]}``
    per area bin (recall and share in percent, None where a bin is empty); ``classes`` maps
    names to KITTI class ids (e.g. {"car": 1, "pedestrian": 2})."""
    bins = list(bins)
    nb = len(bins)
    gt_n = {c: np.zeros(nb, np.int64) for c in classes}
    gt_hit = {c: np.zeros(nb, np.int64) for c in classes}
    pr_n = {c: np.zeros(nb, np.int64) for c in classes}
    pr_fp = {c: np.zeros(nb, np.int64) for c in classes}
    for seq in sequences:
        gt = _read_rles(child_path(gt_txt_dir, seq, "sequence name", ".txt"))
        res = _read_rles(child_path(results_dir, seq, "sequence name", ".txt"))
        for frame in sorted(set(gt) | set(res)):
            g_all, r_all = gt.get(frame, []), res.get(frame, [])
            ignore = [r for c, r in g_all if c == KITTI_IGNORE_CLASS]
            ignore_rle = mask_utils.merge(ignore) if ignore else None  # once per frame
            for name, cid in classes.items():
                g = [r for c, r in g_all if c == cid]
                p = [r for c, r in r_all if c == cid]
                if p and ignore_rle is not None:  # share of each prediction in ignore regions
                    inside = mask_utils.iou(p, [ignore_rle], [1])[:, 0]
                    p = [r for r, s in zip(p, inside) if s <= 0.5]
                matched_g = np.zeros(len(g), bool)
                matched_p = np.zeros(len(p), bool)
                if g and p:
                    ious = np.asarray(mask_utils.iou(p, g, [0] * len(g)))
                    hit = ious >= iou
                    matched_p, matched_g = hit.any(1), hit.any(0)
                for r, m in zip(g, matched_g):
                    b = _bin(float(mask_utils.area(r)), bins)
                    gt_n[name][b] += 1
                    gt_hit[name][b] += int(m)
                for r, m in zip(p, matched_p):
                    b = _bin(float(mask_utils.area(r)), bins)
                    pr_n[name][b] += 1
                    pr_fp[name][b] += int(not m)

    def pct(a: int, n: int) -> float | None:
        return round(100.0 * float(a) / float(n), 2) if n else None

    return {name: [{"area": lab, "gt": int(gt_n[name][i]),
                    "recall": pct(gt_hit[name][i], gt_n[name][i]),
                    "predictions": int(pr_n[name][i]),
                    "false_positive_share": pct(pr_fp[name][i], pr_n[name][i])}
                   for i, lab in enumerate(bin_labels(bins))] for name in classes}


def print_size_breakdown(table: dict[str, list[dict]], iou: float = 0.5, console=None) -> None:
    """One rich table per class: GT count and recall, predictions and FP share, per area bin."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()

    def show(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for name, rows in table.items():
        t = Table(title=f"{name}: recall at mask IoU >= {iou:g} by area (px)")
        for col in ("area", "GT", "recall %", "predictions", "false pos. %"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            t.add_row(r["area"], str(r["gt"]), show(r["recall"]), str(r["predictions"]),
                      show(r["false_positive_share"]))
        console.print(t)
