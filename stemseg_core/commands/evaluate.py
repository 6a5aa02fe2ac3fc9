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


def run(args: argparse.Namespace) -> int:
    from stemseg_core.evaluation.report import plot_metrics, print_metrics, write_metrics_json

    results = Path(args.results)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder not found: {results}")
    if args.format == "davis":
        from stemseg_core.evaluation.davis import evaluate_davis

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
    js = write_metrics_json(metrics, results / "metrics.json")
    print(f"wrote {js}")
    if not args.no_plot:
        png = plot_metrics(metrics, results / "metrics.png", title)
        print(f"wrote {png}")
    return 0
