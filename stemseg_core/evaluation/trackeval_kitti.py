"""KITTI MOTS evaluation with TrackEval (HOTA, CLEAR incl. sMOTSA, Identity).

``evaluate_kitti_mots(gt_dir, results_dir)`` scores ``results_dir/<seq>.txt`` files (as written
by ``stemseg infer``) against a KITTI MOTS tree::

    gt_dir/instances_txt/<seq>.txt          (also found: gt_dir/training/instances_txt, label_02)
    gt_dir/training/image_02/<seq>/*.png    (only used for sequence lengths when needed)
    gt_dir/val.seqmap, train.seqmap         (lines "<seq> empty <first> <last>" or just "<seq>")

How TrackEval is driven (see trackeval/datasets/kitti_mots.py):
- The seqmap is parsed here and passed as ``SEQ_INFO`` (sequence -> number of frames). TrackEval's
  own seqmap reader only keeps lines with >= 4 fields, renames sequences to ``%04d`` and fails to
  sniff the CSV dialect of a one-line seqmap.
- GT is read in place: ``GT_FOLDER`` = the instances_txt folder, ``GT_LOC_FORMAT`` =
  ``{gt_folder}/{seq}.txt`` (its default is ``{gt_folder}/label_02/{seq}.txt``).
- Results are read in place too: ``TRACKERS_FOLDER`` = the results folder's parent,
  ``TRACKERS_TO_EVAL`` = [its name], ``TRACKER_SUB_FOLDER`` = "" (default "data").
- All printing, summary/detailed files, plots and the error log TrackEval writes into its own
  package folder are switched off; its stdout chatter is captured and shown only on error
  (trackeval_runner.py, shared with the DAVIS evaluation).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stemseg_core.data import kitti_layout
from stemseg_core.data.safe_names import check_plain_name
from stemseg_core.evaluation.trackeval_runner import EvaluationError, run_trackeval

KITTI_CLASSES = ("car", "pedestrian")
#: Keys of each class's dict in the result, in display order, and where TrackEval keeps them.
METRIC_SOURCES = {
    "HOTA": ("HOTA", "HOTA"),
    "DetA": ("HOTA", "DetA"),
    "AssA": ("HOTA", "AssA"),
    "sMOTSA": ("CLEAR", "sMOTA"),
    "MOTSA": ("CLEAR", "MOTA"),
    "MOTSP": ("CLEAR", "MOTP"),
    "IDSW": ("CLEAR", "IDSW"),
    "IDF1": ("Identity", "IDF1"),
}
COUNT_METRICS = ("IDSW",)


# --------------------------------------------------------------------------------------------
# Locating files


def find_gt_txt_dir(gt_dir: str | Path) -> Path:
    """The folder holding the GT ``<seq>.txt`` files inside a KITTI MOTS tree."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise EvaluationError(f"ground-truth folder not found: {gt_dir}")
    found = kitti_layout.gt_txt_dir(gt_dir)
    if found is not None:
        return found
    if any(gt_dir.glob("*.txt")):
        return gt_dir
    raise EvaluationError(f"no KITTI MOTS ground truth in {gt_dir}: expected "
                          f"{gt_dir / 'instances_txt'}/<seq>.txt")


def find_seqmap(gt_dir: str | Path, split: str) -> Path:
    """``<gt_dir>/<split>.seqmap`` (or KITTI's ``evaluate_mots.seqmap.<split>``)."""
    try:
        return kitti_layout.find_seqmap(gt_dir, split)
    except FileNotFoundError as e:
        raise EvaluationError(f"{e} (or pass --seqmap FILE)") from None


def read_seqmap(path: str | Path) -> dict[str, int | None]:
    """Seqmap -> {sequence: number of frames or None} (:func:`kitti_layout.read_seqmap`)."""
    try:
        return kitti_layout.read_seqmap(path)
    except (FileNotFoundError, ValueError) as e:
        raise EvaluationError(str(e)) from None


def _max_frame(txt: Path) -> int:
    last = -1
    if txt.is_file():
        for line in txt.read_text().splitlines():
            parts = line.split(maxsplit=1)
            if parts:
                try:
                    last = max(last, int(float(parts[0])))
                except ValueError:
                    raise EvaluationError(f"{txt}: bad frame number in line '{line[:60]}'") \
                        from None
    return last


def sequence_length(gt_dir: str | Path, seq: str, gt_txt_dir: Path | None = None) -> int:
    """Number of frames of a sequence: images in image_02/<seq>, else last GT frame + 1."""
    gt_dir = Path(gt_dir)
    try:
        return len(kitti_layout.sequence_frames(gt_dir, seq))
    except FileNotFoundError:
        pass
    txt_dir = gt_txt_dir or find_gt_txt_dir(gt_dir)
    return _max_frame(txt_dir / f"{seq}.txt") + 1


# --------------------------------------------------------------------------------------------
# Evaluation


def extract_kitti_metrics(combined: dict, classes: Iterable[str]) -> dict[str, dict[str, float]]:
    """TrackEval's ``res['COMBINED_SEQ']`` -> {class: {HOTA, DetA, ..., IDF1}} in percent."""
    out: dict[str, dict[str, float]] = {}
    for cls in classes:
        vals: dict[str, float] = {}
        for key, (metric, field) in METRIC_SOURCES.items():
            v = combined[cls][metric][field]
            if key in COUNT_METRICS:
                vals[key] = int(v)
            else:
                vals[key] = float(100.0 * np.mean(v))
        out[cls] = vals
    return out


def per_sequence_hota(raw: dict, seqs: Sequence[str], classes: Sequence[str]) -> dict:
    """From :func:`evaluate_kitti_mots`'s raw result (``return_raw``): {seq: {class: HOTA in
    percent, or None where the sequence has no ground truth of the class}}."""
    out = {}
    for seq in seqs:
        row = {}
        for cls in classes:
            res = raw[seq][cls]
            gt = float(res["CLEAR"]["CLR_TP"] + res["CLEAR"]["CLR_FN"])
            row[cls] = float(100.0 * np.mean(res["HOTA"]["HOTA"])) if gt > 0 else None
        out[seq] = row
    return out


def evaluate_kitti_mots(gt_dir: str | Path, results_dir: str | Path, split: str = "val",
                        seqmap: str | Path | None = None,
                        classes: Sequence[str] = KITTI_CLASSES,
                        sequences: Sequence[str] | None = None,
                        return_raw: bool = False) -> dict:
    """Score ``results_dir/<seq>.txt`` against KITTI MOTS ground truth with TrackEval.

    Sequences come from ``sequences`` if given, else ``seqmap`` (a file), else
    ``<gt_dir>/<split>.seqmap``. Returns ``{class: {"HOTA", "DetA", "AssA", "sMOTSA", "MOTSA",
    "MOTSP", "IDSW", "IDF1"}}`` in percent as TrackEval prints them (IDSW is a count). With
    ``return_raw`` returns ``(metrics, trackeval_result_for_the_tracker)``.
    Raises :class:`EvaluationError` (a FileNotFoundError) naming the missing path.
    """
    import trackeval

    gt_dir = Path(gt_dir)
    results_dir = Path(results_dir)
    classes = [c.strip().lower() for c in classes if c.strip()]
    bad = [c for c in classes if c not in KITTI_CLASSES]
    if bad or not classes:
        raise ValueError(f"classes {bad or classes} not evaluable; KITTI MOTS has "
                         f"{', '.join(KITTI_CLASSES)}")
    gt_txt = find_gt_txt_dir(gt_dir)
    if not results_dir.is_dir():
        raise EvaluationError(f"results folder not found: {results_dir}")
    if sequences:
        seq_lengths: dict[str, int | None] = {str(s): None for s in sequences}
    else:
        seq_lengths = read_seqmap(seqmap if seqmap is not None else find_seqmap(gt_dir, split))
    for s in seq_lengths:  # <gt>/<seq>.txt and <results>/<seq>.txt stay inside their folders
        check_plain_name(s, "sequence name")
    missing_gt = [str(gt_txt / f"{s}.txt") for s in seq_lengths if not (gt_txt / f"{s}.txt")
                  .is_file()]
    if missing_gt:
        raise EvaluationError(f"ground-truth file(s) not found: {', '.join(missing_gt)}")
    missing_res = [str(results_dir / f"{s}.txt") for s in seq_lengths
                   if not (results_dir / f"{s}.txt").is_file()]
    if missing_res:
        raise EvaluationError(f"result file(s) not found: {', '.join(missing_res)} (run "
                              f"`stemseg infer` on these sequences or restrict the sequences)")
    lengths = {s: n if n is not None else sequence_length(gt_dir, s, gt_txt)
               for s, n in seq_lengths.items()}
    try:
        kitti_layout.check_results_dir(results_dir, gt_txt, lengths)
    except ValueError as e:  # DataFormatError: names file and line
        raise EvaluationError(str(e)) from None
    seq_info = {s: max(n, 1) for s, n in lengths.items()}

    resolved = results_dir.resolve()
    ds_config = trackeval.datasets.KittiMOTS.get_default_dataset_config()
    ds_config.update({
        "GT_FOLDER": str(gt_txt),
        "GT_LOC_FORMAT": "{gt_folder}/{seq}.txt",
        "TRACKERS_FOLDER": str(resolved.parent),
        "TRACKERS_TO_EVAL": [resolved.name],
        "TRACKER_SUB_FOLDER": "",
        "OUTPUT_FOLDER": str(resolved.parent),
        "CLASSES_TO_EVAL": list(classes),
        "SPLIT_TO_EVAL": split,
        "SEQ_INFO": seq_info,
        "PRINT_CONFIG": False,
    })
    metric_cfg = {"PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(dict(metric_cfg)), trackeval.metrics.CLEAR(dict(metric_cfg)),
               trackeval.metrics.Identity(dict(metric_cfg))]

    res = run_trackeval(lambda: trackeval.datasets.KittiMOTS(ds_config), metrics)
    tracker_res = res["KittiMOTS"][resolved.name]
    out = extract_kitti_metrics(tracker_res["COMBINED_SEQ"], classes)
    return (out, tracker_res) if return_raw else out
