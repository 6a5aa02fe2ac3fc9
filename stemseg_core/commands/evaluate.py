"""`stemseg evaluate`: score tracker results with TrackEval (KITTI MOTS or DAVIS)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "score results with TrackEval (KITTI MOTS HOTA/sMOTSA/IDF1, or DAVIS J&F)"
DESCRIPTION = """\
Score tracker results with TrackEval and write metrics.json and metrics.png into the results dir.

KITTI MOTS (default): --results holds <seq>.txt files as written by `stemseg infer`; --gt is a
KITTI MOTS tree (instances_txt/<seq>.txt, <split>.seqmap). Metrics per class, in percent
(IDSW a count): HOTA DetA AssA sMOTSA MOTSA MOTSP IDSW IDF1.
DAVIS (--format davis): --gt holds <seq>/*.png annotations (or Annotations_unsupervised/480p),
--results <seq>/*.png indexed masks. Metrics: J&F and its parts.

Examples:
  stemseg evaluate --gt data/synth --results out/ --split val
  stemseg evaluate --gt data/synth --results out/ --seqmap my.seqmap --classes car
  stemseg evaluate --gt DAVIS --results out_davis/ --format davis
  stemseg evaluate --gt data/synth --results out/ --by-size   # + recall / false pos. by area

--by-size (KITTI MOTS) also prints, per class and mask-area bin, the share of ground-truth masks
found at mask IoU >= 0.5 and the share of predictions that match nothing, and writes them to
size_breakdown.json in the results dir (stemseg_core/evaluation/size_breakdown.py).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="ground-truth dataset folder")
    parser.add_argument("--results", required=True,
                        help="results folder (<seq>.txt for KITTI MOTS, <seq>/ for DAVIS)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--split", default="val",
                       help="evaluate the sequences of <gt>/<split>.seqmap (default: val)")
    group.add_argument("--seqmap", help="seqmap file listing the sequences to evaluate")
    group.add_argument("--seq", action="append", dest="seqs", metavar="SEQ",
                       help="evaluate only this sequence (repeatable)")
    parser.add_argument("--classes", default="car,pedestrian",
                        help="KITTI MOTS classes, comma separated (default: car,pedestrian)")
    parser.add_argument("--format", choices=("kitti_mots", "davis"), default="kitti_mots")
    parser.add_argument("--no-plot", action="store_true", help="do not write metrics.png")
    parser.add_argument("--by-size", action="store_true",
                        help="KITTI MOTS: also recall and false positives by mask area "
                             "(size_breakdown.json)")


def run(args: argparse.Namespace) -> int:
    from stemseg_core.evaluation.report import plot_metrics, print_metrics, write_metrics_json

    results = Path(args.results)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder not found: {results}")
    if args.format == "davis":
        from stemseg_core.evaluation.davis_jf import evaluate_davis

        metrics = evaluate_davis(args.gt, results, sequences=args.seqs)
        title = f"DAVIS J&F: {results}"
    else:
        from stemseg_core.evaluation.trackeval_kitti import evaluate_kitti_mots

        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        try:
            metrics = evaluate_kitti_mots(args.gt, results, split=args.split,
                                          seqmap=args.seqmap, classes=classes,
                                          sequences=args.seqs)
        except ValueError as e:
            print(f"stemseg evaluate: error: {e}", file=sys.stderr)
            return 2
        title = f"KITTI MOTS: {results}"
    print_metrics(metrics, title)
    if args.by_size:
        if args.format == "davis":
            print("stemseg evaluate: error: --by-size is for KITTI MOTS results", file=sys.stderr)
            return 2
        _size_report(args, classes, results)
    js = write_metrics_json(metrics, results / "metrics.json")
    print(f"wrote {js}")
    if not args.no_plot:
        png = plot_metrics(metrics, results / "metrics.png", title)
        print(f"wrote {png}")
    return 0


def _size_report(args: argparse.Namespace, classes: list[str], results: Path) -> None:
    import json

    from stemseg_core.evaluation.kitti_results import KITTI_CLASS_IDS
    from stemseg_core.evaluation.size_breakdown import print_size_breakdown, size_breakdown
    from stemseg_core.evaluation.trackeval_kitti import find_gt_txt_dir, find_seqmap, read_seqmap

    if args.seqs:
        seqs = list(args.seqs)
    else:
        seqs = list(read_seqmap(args.seqmap if args.seqmap else find_seqmap(args.gt, args.split)))
    table = size_breakdown(find_gt_txt_dir(args.gt), results, seqs,
                           {c: KITTI_CLASS_IDS[c] for c in classes})
    print_size_breakdown(table)
    path = results / "size_breakdown.json"
    path.write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {path}")
