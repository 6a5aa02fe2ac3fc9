"""3-D position error of tracked instances against depth (or LiDAR) ground truth (issue 36).

Per frame with a depth image, each predicted instance is matched to the ground-truth instance of
the highest mask IoU (>= ``min_iou``); the reference position is the ground-truth mask
back-projected with the true depth (:func:`~stemseg_core.geometry.lift_from_depth`, the same
statistic the node publishes), the prediction's position is what the node's lifter gives for
its mask. Errors are Euclidean (metres) and relative to the reference's distance from the
camera. :func:`summarize` gives median and p90 per ground-truth class, and the share of
predicted instances that have a position at all.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stemseg_core.geometry import Object3D, lift_from_depth

#: A predicted instance is scored against a ground-truth one from this mask IoU on.
MIN_IOU = 0.5


@dataclass
class PositionErrors:
    """What :func:`measure_frame` collects over a sequence."""

    errors: list[tuple[str, float, float]] = field(default_factory=list)  # (class, m, dist m)
    instances: int = 0  # predicted instances in frames with depth
    with_position: int = 0  # of those, how many had a position

    def add(self, other: PositionErrors) -> None:
        self.errors += other.errors
        self.instances += other.instances
        self.with_position += other.with_position


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 0.0


def measure_frame(pred_masks: Sequence[np.ndarray], pred_positions: Sequence[np.ndarray | None],
                  gt_masks: Sequence[np.ndarray], gt_classes: Sequence[str], depth: np.ndarray,
                  K: np.ndarray, min_iou: float = MIN_IOU) -> PositionErrors:
    """One frame: predicted (H, W) bool masks with their (3,) positions (None: no position),
    ground-truth masks and class names, the frame's depth image (uint16 mm or float metres)
    and K (3, 3). A matched prediction without a position counts in ``instances`` only."""
    refs = lift_from_depth(list(gt_masks), depth, K) if pred_masks and gt_masks else []
    return measure_against(pred_masks, pred_positions, gt_masks, gt_classes, refs, min_iou)


def measure_against(pred_masks: Sequence[np.ndarray],
                    pred_positions: Sequence[np.ndarray | None], gt_masks: Sequence[np.ndarray],
                    gt_classes: Sequence[str], refs: Sequence[Object3D],
                    min_iou: float = MIN_IOU) -> PositionErrors:
    """:func:`measure_frame` with the references given: ``refs[k]`` is ground-truth mask k
    lifted by any sensor (depth, or LiDAR with :func:`~stemseg_core.geometry.lift_from_points`)."""
    out = PositionErrors(instances=len(pred_masks),
                         with_position=sum(p is not None for p in pred_positions))
    if not pred_masks or not gt_masks:
        return out
    for mask, pos in zip(pred_masks, pred_positions):
        ious = [_iou(mask, g) for g in gt_masks]
        k = int(np.argmax(ious))
        if ious[k] < min_iou or pos is None or not refs[k].has_position:
            continue
        ref = np.asarray(refs[k].position, np.float64)
        out.errors.append((str(gt_classes[k]), float(np.linalg.norm(np.asarray(pos) - ref)),
                           float(np.linalg.norm(ref))))
    return out


def summarize(pe: PositionErrors) -> dict[str, dict[str, float]]:
    """{class (and "all"): {n, median_m, p90_m, median_pct, p90_pct}} plus
    ``{"coverage": {"instances", "with_position", "share_with_position"}}``."""
    table: dict[str, dict[str, float]] = {}
    for cls in sorted({c for c, _, _ in pe.errors}) + ["all"]:
        rows = [(e, d) for c, e, d in pe.errors if cls in ("all", c)]
        if not rows:
            continue
        err = np.array([e for e, _ in rows])
        pct = 100.0 * err / np.maximum(np.array([d for _, d in rows]), 1e-6)
        table[cls] = {"n": float(len(rows)),
                      "median_m": float(np.median(err)),
                      "p90_m": float(np.percentile(err, 90)),
                      "median_pct": float(np.median(pct)),
                      "p90_pct": float(np.percentile(pct, 90))}
    table["coverage"] = {"instances": float(pe.instances),
                         "with_position": float(pe.with_position),
                         "share_with_position": (pe.with_position / pe.instances
                                                 if pe.instances else 0.0)}
    return table


def markdown(summary: dict[str, dict[str, float]], source: str, reference: str = "depth") -> str:
    """The report section: a table per class and the share with a position."""
    cov = summary.get("coverage", {})
    lines = ["## 3-D position error", "",
             f"Against the {reference} ground truth ({source}); instances matched to ground "
             f"truth at mask IoU >= {MIN_IOU}.", "",
             "| class | matched | median (m) | p90 (m) | median (% of distance) | p90 (%) |",
             "|---|---|---|---|---|---|"]
    for cls, r in summary.items():
        if cls == "coverage":
            continue
        lines.append(f"| {cls} | {int(r['n'])} | {r['median_m']:.3f} | {r['p90_m']:.3f} | "
                     f"{r['median_pct']:.1f} | {r['p90_pct']:.1f} |")
    if len(lines) == 6:
        lines.append("| (no instance matched) | 0 | - | - | - | - |")
    lines += ["", f"Instances with a position: {int(cov.get('with_position', 0))} of "
              f"{int(cov.get('instances', 0))} ({100 * cov.get('share_with_position', 0):.0f} %) "
              f"in the frames with {reference}.", ""]
    return "\n".join(lines)
