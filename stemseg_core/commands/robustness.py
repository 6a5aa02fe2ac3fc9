"""`stemseg robustness`: HOTA per class under camera effects at three severities (issue 38)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stemseg_core.commands.backend_options import add_backend_options, backend_overrides
from stemseg_core.commands.sequence_options import add_sequence_options

HELP = "HOTA per class under JPEG, chroma subsampling, noise, blur, exposure, ... (3 severities)"
DESCRIPTION = """\
Run a checkpoint's StreamingTracker over a KITTI MOTS tree's sequences, first lossless, then
with every camera effect (stemseg_core/data/camera_effects.py, the same effects as the training
augmentation) at each severity, applied once with a fixed seed; score each run with TrackEval
and show HOTA per class in an ImageNet-C style table: HOTA per severity, its mean, and the
change from lossless averaged over drives and classes with the worst drive x class change in
brackets. Severity 1 of jpeg is quality 95 (image_transport's default), of chroma 4:2:2 (UYVY,
as V4L2 cameras send it), of demosaic a Bayer sensor demosaiced edge-aware (what the node
does with a bayer_* camera); camera_effects.LEVELS lists every value. Effects joined by "+"
are one variant, a camera's pipeline: demosaic+jpeg is a Bayer sensor's frame sent as JPEG
(its first stage the same frames as demosaic alone, so the two pair drive by drive).

Runs as the node does by default: the device's deployment backend (CPU: OpenVINO BF16), no
flip test, no minimum track length (--set / --backend / --precision change it).
Writes OUT/robustness.json, OUT/robustness.md and OUT/robustness.png.

With --baseline (an earlier run's robustness.json or --out directory, same sequences, frames
and seed), each variant and class is also set against the baseline: the change per drive,
its mean ± standard error, and a verdict (better or worse beyond twice that error, else
unresolved). On a few
drives a change of a point or two is often not; `stemseg compare` pools several sets.

Examples:
  stemseg synth --out /tmp/rob --sequences 4 --frames 40 --seed 99991 --val-fraction 0.5
  stemseg robustness --checkpoint checkpoints/stemseg_demo.pt --data /tmp/rob --split val \\
      --out out/robustness
  stemseg robustness ... --effects jpeg chroma --severities 1 --frames 20
  stemseg robustness ... --effects demosaic demosaic+jpeg demosaic+chroma --severities 1
  stemseg robustness --checkpoint runs/mine/stemseg_demo.pt ... --baseline out/robustness
"""


def _effect_spec(text: str) -> str:
    """argparse type of --effects: an effect or a pipeline of effects, checked by name."""
    from stemseg_core.data.camera_effects import pipeline_effects

    try:
        pipeline_effects(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stemseg_core.data.camera_effects import PIPELINE_SEP, effect_names

    parser.add_argument("--checkpoint", default="checkpoints/stemseg_demo.pt",
                        help="model checkpoint (default: %(default)s)")
    add_sequence_options(parser)
    parser.add_argument("--effects", nargs="+", default=None, type=_effect_spec,
                        metavar="EFFECT", help=f"effects to apply (default: all: "
                                               f"{', '.join(effect_names())}); effects joined "
                                               f"by '{PIPELINE_SEP}' are one variant, applied "
                                               f"in that order (demosaic{PIPELINE_SEP}jpeg: a "
                                               f"Bayer camera's frames sent as JPEG)")
    parser.add_argument("--severities", nargs="+", type=float, default=[1.0, 2.0, 3.0],
                        help="severities in [0, 3] (default: 1 2 3)")
    parser.add_argument("--frames", type=int, default=0,
                        help="only the first N frames of each sequence (0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the effects (0)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    add_backend_options(parser)
    parser.add_argument("--set", nargs="+", action="extend", dest="overrides", default=[],
                        metavar="KEY=VALUE", help="config override after the node's defaults")
    parser.add_argument("--min-track-length", type=int, default=0,
                        help="drop tracks shorter than N frames (0 = keep all, as the node)")
    parser.add_argument("--keep-frames", action="store_true",
                        help="keep the corrupted frames in OUT/frames")
    parser.add_argument("--baseline", default=None, metavar="PATH",
                        help="an earlier run (robustness.json or its directory) to compare "
                             "with, drive by drive")


def node_overrides(device: str) -> list[str]:
    """The node's defaults on ``device``: its deployment backend and precision, no flip test."""
    from stemseg_core.backends.base import DEPLOYMENT_DEFAULTS

    backend, precision = DEPLOYMENT_DEFAULTS.get(device.split(":")[0], ("torch", "fp32"))
    return [f"inference.backend={backend}", f"inference.precision={precision}",
            "inference.flip_test=false"]


def _print_table(result: dict) -> None:
    from rich.table import Table

    from stemseg_core.evaluation.report import print_unwrapped
    from stemseg_core.evaluation.robustness_benchmark import LOSSLESS, delta_cell, summary_rows

    classes, sevs = result["classes"], [f"{s:g}" for s in result["severities"]]
    table = Table(title="HOTA under camera effects (Δ: mean change from lossless over drives "
                        "and classes ± its standard error, worst drive x class in brackets)")
    table.add_column("effect")
    for s in sevs:
        for c in classes:
            table.add_column(f"s{s} {c[:3]}", justify="right")
    for s in sevs:
        table.add_column(f"Δ s{s}", justify="right")
    for row in summary_rows(result):
        if row["effect"] == LOSSLESS:
            h = row["hota"]["0"]
            table.add_row(LOSSLESS, *[f"{h[c]:.1f}" for _s in sevs for c in classes],
                          *["" for _s in sevs])
            continue
        table.add_row(row["effect"],
                      *[f"{row['hota'][s][c]:.1f}" for s in sevs for c in classes],
                      *[delta_cell(row, s) for s in sevs])
    print_unwrapped(table)


def run(args: argparse.Namespace) -> int:
    from stemseg_core.checkpoint import file_sha256
    from stemseg_core.data.camera_effects import effect_names
    from stemseg_core.data.safe_names import check_plain_name
    from stemseg_core.evaluation.robustness_benchmark import (
        markdown_table,
        measure_robustness,
        plot,
    )
    from stemseg_core.evaluation.robustness_compare import RESULT_FILE
    from stemseg_core.evaluation.trackeval_kitti import find_seqmap, read_seqmap
    from stemseg_core.inference.tracker import StreamingTracker

    bad = [s for s in args.severities if not 0 <= s <= 3]
    if bad or args.frames < 0:
        print(f"stemseg robustness: error: severities must be in [0, 3] and --frames >= 0, got "
              f"{bad or args.frames}", file=sys.stderr)
        return 2
    seqs = list(args.seqs) if args.seqs else list(read_seqmap(find_seqmap(args.data, args.split)))
    try:
        for s in seqs:
            check_plain_name(s, "sequence name")
    except ValueError as e:
        print(f"stemseg robustness: error: {e}", file=sys.stderr)
        return 2
    effects = list(args.effects) if args.effects else effect_names()
    baseline = None
    if args.baseline:  # refused before the long run, not after it
        from stemseg_core.evaluation.robustness_compare import check_comparable, load_result
        try:
            baseline = load_result(args.baseline)
            check_comparable({"sequences": seqs, "frames": args.frames, "seed": args.seed},
                             baseline)
        except ValueError as e:
            print(f"stemseg robustness: error: --baseline: {e}", file=sys.stderr)
            return 2
    overrides = node_overrides(args.device) + list(args.overrides) + backend_overrides(args)
    tracker = StreamingTracker.from_checkpoint(args.checkpoint, device=args.device,
                                               overrides=overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(seqs)} sequences, lossless + {len(effects)} effects x {len(args.severities)} "
          f"severities, overrides: {' '.join(overrides)}")

    def progress(item: dict) -> None:
        hota = ", ".join(f"{c} {m['HOTA']:.2f}" for c, m in item["metrics"].items())
        print(f"{item['effect']} {item['severity']:g}: HOTA {hota}", flush=True)

    result = measure_robustness(tracker, Path(args.data), seqs, out, effects, args.severities,
                                frames=args.frames, seed=args.seed,
                                min_track_length=args.min_track_length or None,
                                keep_frames=args.keep_frames, on_variant=progress)
    result.update({"checkpoint": str(args.checkpoint),
                   "checkpoint_sha256": (file_sha256(Path(args.checkpoint))
                                         if Path(args.checkpoint).is_file() else None),
                   "data": str(args.data), "overrides": overrides})
    table, comparison = markdown_table(result), ""
    if baseline is not None:
        from stemseg_core.evaluation.robustness_compare import (
            compare_results,
            comparison_markdown,
        )
        try:  # a baseline that matches nothing must not cost the run's own results
            rows = compare_results(result, baseline)
        except ValueError as e:
            print(f"stemseg robustness: warning: --baseline: {e}; no comparison",
                  file=sys.stderr)
        else:
            result["baseline"] = {"path": str(args.baseline),
                                  "checkpoint_sha256": baseline.get("checkpoint_sha256"),
                                  "rows": rows}
            comparison = (f"\nAgainst the baseline {args.baseline} (per drive: this run minus "
                          f"the baseline, mean ± standard error, drives):\n\n" +
                          comparison_markdown(rows))
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    (out / "robustness.md").write_text(table + comparison)
    plot(result, out / "robustness.png")
    _print_table(result)
    if comparison:
        print(comparison)
    print(f"wrote {out / RESULT_FILE}, {out / 'robustness.md'}, {out / 'robustness.png'}")
    return 0
