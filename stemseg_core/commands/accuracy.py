"""`stemseg accuracy`: a checkpoint on fixed held-out drives against its recorded floor."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stemseg_core.commands.backend_options import add_backend_options, backend_overrides

HELP = "HOTA per class on fixed held-out synthetic drives, against the recorded floor"
DESCRIPTION = """\
Generate the held-out synthetic drives named in a floor file (default config/accuracy_floor.yaml:
seed, count, length, size; never used for training or tuning), run the checkpoint's
StreamingTracker over them with the file's settings (those the node runs by default), score them
with TrackEval and compare HOTA per class with the recorded figures and the floor.

Writes OUT/accuracy.json (with HOTA per drive: `stemseg compare` pairs it with another model's)
and OUT/accuracy.md (the table make demo's report shows); the drives are kept in OUT/drives and
reused when their synth_info.json matches. Exit status 1 when a class is
below its floor (only when the checkpoint is the one the floor was recorded for: another
checkpoint is compared for information, exit 0).

With --camera the file's camera section is scored instead: the same drives with every frame
through a camera effect (the shipped file: JPEG at quality 95, as image_transport's compressed
topic sends it) against that section's own figures.

Examples:
  stemseg accuracy                                  # the demo checkpoint, as the node runs it
  stemseg accuracy --camera                         # the same drives as a JPEG camera sends them
  stemseg accuracy --checkpoint runs/demo/last.pt   # a new model against the shipped figures
  stemseg accuracy --set inference.mask_refinement_radius=0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stemseg_core.evaluation.accuracy_floor import DEFAULT_FLOOR_FILE

    parser.add_argument("--floor", default=str(DEFAULT_FLOOR_FILE),
                        help="floor file (default: %(default)s)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to score (default: the floor file's, relative to the "
                             "repository)")
    parser.add_argument("--camera", action="store_true",
                        help="score the floor file's camera section (frames through its camera "
                             "effect) instead of the lossless drives")
    parser.add_argument("--out", default="out/accuracy", help="output folder (out/accuracy)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    add_backend_options(parser)
    parser.add_argument("--set", nargs="+", action="extend", dest="overrides", default=[],
                        metavar="KEY=VALUE", help="config override after the floor file's own")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from stemseg_core.evaluation.accuracy_floor import (
        FloorFileError,
        compare,
        for_this_machine,
        load_floor,
        markdown_table,
    )
    from stemseg_core.evaluation.report import print_metrics
    from stemseg_core.evaluation.robustness_compare import ACCURACY_FILE

    try:
        spec = load_floor(args.floor)
    except FloorFileError as e:
        print(f"stemseg accuracy: error: {e}", file=sys.stderr)
        return 2
    if args.camera:
        if spec.camera is None:
            print(f"stemseg accuracy: error: --camera: {spec.path} has no 'camera' section",
                  file=sys.stderr)
            return 2
        spec = spec.camera
    spec = for_this_machine(spec)
    out = Path(args.out)
    result = measure(spec, out, checkpoint=args.checkpoint, device=args.device,
                     overrides=list(args.overrides) + backend_overrides(args),
                     progress=not args.quiet)
    rows = compare(result["metrics"], spec)
    print_metrics(result["metrics"], f"held-out drives (seed {spec.drives.seed})"
                  + (f" through {spec.effect} {spec.severity:g}" if spec.effect else ""))
    table = markdown_table(rows, spec)
    (out / "accuracy.md").write_text(table)
    (out / ACCURACY_FILE).write_text(json.dumps(result_record(spec, result, rows), indent=2)
                                     + "\n")
    print(table)
    print(f"wrote {out / 'accuracy.md'} and {out / ACCURACY_FILE}")
    if result["sha256"] != spec.checkpoint_sha256:
        print(f"note: the floor was recorded for checkpoint sha256 {spec.checkpoint_sha256[:16]}"
              f"..., this one is {result['sha256'][:16]}...: compared for information only")
        return 0
    below = [r.cls for r in rows if not r.ok]
    if below:
        print(f"stemseg accuracy: HOTA below the floor for {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


def result_record(spec, result: dict, rows) -> dict:
    """accuracy.json: the figures against the floor, HOTA per drive, and what `stemseg compare`
    needs to pair it with another result drive by drive, in the form `stemseg robustness`
    writes it (the variant: lossless or the camera effect and its severity; the drives and
    their ground truth's sha256; all frames, effect seed 0)."""
    from stemseg_core.evaluation.robustness_benchmark import LOSSLESS

    return {"checkpoint": result["checkpoint"], "checkpoint_sha256": result["sha256"],
            "floor_file": str(spec.path), "overrides": result["overrides"],
            "rows": [{"class": r.cls, "hota": r.hota, "recorded": r.recorded, "floor": r.floor,
                      "ok": r.ok} for r in rows],
            "metrics": result["metrics"], "per_sequence": result["per_sequence"],
            "effect": spec.effect or LOSSLESS, "severity": float(spec.severity),
            "sequences": result["sequences"], "frames": 0, "seed": 0,
            "gt_sha256": result["gt_sha256"], "gt_dir": result["gt_dir"],
            "results_dir": result["results_dir"]}


def measure(spec, out: Path, checkpoint: str | None = None, device: str = "cpu",
            overrides: list[str] | None = None, progress: bool = True) -> dict:
    """Run ``spec``'s drives through the tracker and score them. Returns {"metrics": {class:
    {HOTA, ...}}, "per_sequence": {drive: {class: HOTA or None}}, "sequences", "gt_sha256",
    "checkpoint", "sha256", "overrides", "gt_dir", "results_dir"} (the folders relative to
    ``out``). Drives are (re)generated in out/drives;
    with ``spec.effect`` the frames first go through that camera effect (into out/camera, seed 0
    as ``stemseg robustness``)."""
    from stemseg_core.checkpoint import file_sha256
    from stemseg_core.data.kitti_layout import ground_truth_sha256, sequence_frames
    from stemseg_core.data.synth import generate_dataset
    from stemseg_core.evaluation.kitti_results import checkpoint_min_track_length
    from stemseg_core.evaluation.robustness_benchmark import corrupt_sequence
    from stemseg_core.evaluation.sequence_run import run_sequence
    from stemseg_core.evaluation.trackeval_kitti import (
        evaluate_kitti_mots,
        find_gt_txt_dir,
        per_sequence_hota,
    )
    from stemseg_core.inference.tracker import StreamingTracker

    d = spec.drives
    ckpt = Path(checkpoint) if checkpoint else spec.path.parents[1] / spec.checkpoint
    tag = f"_{spec.effect}_{spec.severity:g}" if spec.effect else ""
    drives, results = out / "drives", out / f"results{tag}"
    info = drives / "synth_info.json"
    want = {"seed": d.seed, "sequences": d.sequences, "frames": d.frames, "height": d.height,
            "width": d.width, "val_fraction": 0.0}
    if not info.is_file() or any(json.loads(info.read_text()).get(k) != v
                                 for k, v in want.items()):
        generate_dataset(drives, d.sequences, d.frames, d.seed, d.height, d.width,
                         val_fraction=0.0)
    all_overrides = list(spec.overrides) + list(overrides or [])
    tracker = StreamingTracker.from_checkpoint(ckpt, device=device, overrides=all_overrides)
    min_len = checkpoint_min_track_length(tracker.cfg.inference, tracker.class_names)
    results.mkdir(parents=True, exist_ok=True)
    seqs = [f"{s:04d}" for s in range(d.sequences)]
    for seq in seqs:
        frames = sequence_frames(drives, seq)
        if spec.effect:
            frames = corrupt_sequence(frames, spec.effect, spec.severity, 0, seq,
                                      out / f"camera{tag}" / seq)
        run_sequence(tracker, frames, results, seq, min_track_length=min_len,
                     show_progress=progress)
    metrics, raw = evaluate_kitti_mots(drives, results, sequences=seqs, split="train",
                                       return_raw=True)
    return {"metrics": metrics, "per_sequence": per_sequence_hota(raw, seqs, list(metrics)),
            "sequences": seqs, "gt_sha256": ground_truth_sha256(find_gt_txt_dir(drives), seqs),
            "checkpoint": str(ckpt), "sha256": file_sha256(ckpt), "overrides": all_overrides,
            "gt_dir": drives.relative_to(out).as_posix(),
            "results_dir": results.relative_to(out).as_posix()}
