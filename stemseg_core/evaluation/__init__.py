"""Evaluation: KITTI MOTS result writer, TrackEval wrappers (KITTI MOTS, DAVIS), reports."""
from __future__ import annotations

from stemseg_core.evaluation.davis_jf import evaluate_davis, write_davis_masks
from stemseg_core.evaluation.kitti_results import (
    read_kitti_mots,
    resolve_overlaps,
    write_kitti_mots,
)
from stemseg_core.evaluation.trackeval_kitti import EvaluationError, evaluate_kitti_mots

__all__ = ["EvaluationError", "evaluate_davis", "evaluate_kitti_mots", "read_kitti_mots",
           "resolve_overlaps", "write_davis_masks", "write_kitti_mots"]
