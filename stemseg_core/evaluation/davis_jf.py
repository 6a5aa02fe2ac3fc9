"""DAVIS (unsupervised) J&F with TrackEval's DAVIS dataset and JAndF metric.

Layout: ground truth ``gt_dir/<seq>/<frame>.png`` (or a DAVIS root holding
``Annotations_unsupervised/480p/<seq>``), results ``results_dir/<seq>/<frame>.png``; both are
indexed PNGs whose pixel value is the object id (0 background, 255 void in GT). Every result
folder needs exactly as many files as its GT folder (TrackEval's rule). TrackEval reads the PNGs
with PIL as 2-D arrays, so results must be single-channel (palette or grey), as
:func:`write_davis_masks` writes them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stemseg_core.data.safe_names import check_plain_name, child_path
from stemseg_core.evaluation.trackeval_runner import EvaluationError, run_trackeval
from stemseg_core.inference.types import FrameResult

DAVIS_METRICS = ("J&F", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def find_davis_gt_dir(gt_dir: str | Path) -> Path:
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise EvaluationError(f"ground-truth folder not found: {gt_dir}")
    for cand in (gt_dir / "Annotations_unsupervised" / "480p", gt_dir / "Annotations" / "480p"):
        if cand.is_dir():
            return cand
    return gt_dir


def _palette() -> list[int]:
    from stemseg_core.visualize import track_colour

    pal = [0, 0, 0]
    for i in range(1, 256):
        b, g, r = track_colour(i)
        pal += [r, g, b]
    return pal


def write_davis_masks(out_dir: str | Path, frames: Iterable[FrameResult],
                      names: Sequence[str] | None = None) -> Path:
    """Write one sequence as palette PNGs ``out_dir/<name>.png`` (pixel = object id, 1..255).

    Track IDs are renumbered 1, 2, ... in order of first appearance (DAVIS ids are 8-bit);
    where masks overlap the higher score wins. ``names[r.index]`` names the file, else
    ``r.index:05d``.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids: dict[int, int] = {}
    pal = _palette()
    for fr in frames:
        img = np.zeros(tuple(fr.image_size), dtype=np.uint8)
        for inst in sorted(fr.instances, key=lambda i: float(i.score)):
            if inst.track_id not in ids:
                if len(ids) >= 254:
                    raise ValueError("DAVIS results hold at most 254 objects per sequence")
                ids[inst.track_id] = len(ids) + 1
            img[np.asarray(inst.mask, dtype=bool)] = ids[inst.track_id]
        name = names[fr.index] if names is not None else f"{fr.index:05d}"
        pil = Image.fromarray(img, mode="P")
        pil.putpalette(pal)
        pil.save(child_path(out_dir, name, "frame name", ".png"))
    return out_dir


def evaluate_davis(gt_dir: str | Path, results_dir: str | Path,
                   sequences: Sequence[str] | None = None, max_detections: int = 0,
                   return_raw: bool = False) -> dict:
    """J&F of ``results_dir/<seq>/*.png`` against DAVIS annotations, in percent.

    Returns ``{"J&F", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"}`` over
    all sequences (TrackEval weights sequences by their number of GT objects).
    """
    import trackeval

    gt = find_davis_gt_dir(gt_dir)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise EvaluationError(f"results folder not found: {results_dir}")
    seqs = list(sequences) if sequences else sorted(p.name for p in gt.iterdir() if p.is_dir())
    if not seqs:
        raise EvaluationError(f"no sequence folders in DAVIS ground truth {gt}")
    for s in seqs:
        check_plain_name(s, "sequence name")
        if not (gt / s).is_dir():
            raise EvaluationError(f"ground-truth sequence folder not found: {gt / s}")
        rdir = results_dir / s
        if not rdir.is_dir():
            raise EvaluationError(f"result folder not found: {rdir}")
        n_gt, n_res = len(list((gt / s).iterdir())), len(list(rdir.iterdir()))
        if n_gt != n_res:
            raise EvaluationError(f"{rdir} holds {n_res} files but {gt / s} holds {n_gt}; "
                                  f"DAVIS needs one result PNG per GT frame")
    resolved = results_dir.resolve()
    cfg = trackeval.datasets.DAVIS.get_default_dataset_config()
    cfg.update({
        "GT_FOLDER": str(gt), "TRACKERS_FOLDER": str(resolved.parent),
        "OUTPUT_FOLDER": str(resolved.parent), "TRACKERS_TO_EVAL": [resolved.name],
        "TRACKER_SUB_FOLDER": "", "SEQ_INFO": {s: None for s in seqs}, "PRINT_CONFIG": False,
        "MAX_DETECTIONS": int(max_detections),
    })
    metrics = [trackeval.metrics.JAndF({"PRINT_CONFIG": False})]

    res = run_trackeval(lambda: trackeval.datasets.DAVIS(cfg), metrics)
    tracker_res = res["DAVIS"][resolved.name]
    comb = tracker_res["COMBINED_SEQ"]["general"]["JAndF"]
    out = {k: float(100.0 * comb[k]) for k in DAVIS_METRICS}
    return (out, tracker_res) if return_raw else out
