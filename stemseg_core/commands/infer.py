"""`stemseg infer`: run the streaming tracker over KITTI MOTS sequences, write result files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stemseg_core.commands.backend_options import add_backend_options, backend_overrides
from stemseg_core.commands.checkpoint_options import add_checkpoint_options, checkpoint_options
from stemseg_core.commands.sequence_options import add_sequence_options
from stemseg_core.data.kitti_layout import frame_number, sequence_frames
from stemseg_core.data.safe_names import check_plain_name, child_path
from stemseg_core.evaluation.sequence_run import run_sequence

HELP = "track instances in image sequences; writes KITTI MOTS results (+ overlays, video)"
DESCRIPTION = """\
Run a checkpoint's StreamingTracker over the frames of each sequence (the same class the ROS node
uses) and write OUT/<seq>.txt in the KITTI MOTS result format, which `stemseg evaluate --results
OUT` reads directly. Frames are <data>/training/image_02/<seq>/*.png (or <data>/image_02/<seq>,
or <data>/<seq>), in sorted order; each is pushed with stamp = its frame number.

Examples:
  stemseg infer --checkpoint runs/demo/last.pt --data data/synth --seq 0010 --out out/
  stemseg infer --checkpoint runs/demo/last.pt --data data/synth --split val --out out/ --overlays
  stemseg infer ... --set inference.flip_test=false   # one network pass per clip (2x faster)
  stemseg infer ... --positions   # + OUT/<seq>.positions.txt from depth_02/ or velodyne/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.pt)")
    add_checkpoint_options(parser)
    add_sequence_options(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_backend_options(parser)
    parser.add_argument("--overlays", action="store_true",
                        help="also write OUT/overlays/<seq>/<frame:06d>.png")
    parser.add_argument("--video", action="store_true",
                        help="also write OUT/overlays/<seq>.mp4")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of --video (10)")
    parser.add_argument("--positions", action="store_true",
                        help="also write OUT/<seq>.positions.txt: 3-D position and size per "
                        "instance from the sequence's depth_02/ (else velodyne/) and calib, as "
                        "the node lifts them (stemseg_core/geometry/positions_file.py)")
    parser.add_argument("--set", nargs="+", action="extend", dest="overrides", default=[],
                        metavar="KEY=VALUE", help="config override, e.g. inference.clip_overlap=2")
    parser.add_argument("--min-area", default=None, metavar="N|authors",
                        help="drop masks smaller than N px ('authors': car 150 / ped 250)")
    parser.add_argument("--min-track-length", default=None, metavar="N|authors",
                        help="drop tracks shorter than N frames ('authors': car 3 / ped 10; "
                             "0 = keep all); default: the checkpoint's "
                             "inference.min_track_length")


def _parse_threshold(value: str | None, authors: dict[str, int], flag: str):
    """None -> off; 'authors' -> the authors' per-class values; else one int for all classes."""
    if value is None:
        return None
    if value.strip().lower() == "authors":
        return dict(authors)
    try:
        return int(value)
    except ValueError:
        from stemseg_core.config import ConfigError

        raise ConfigError(f"{flag}: expected an integer or 'authors', got {value!r}") from None


def _write_positions(out: Path, seq: str, frames: list[Path], results: list) -> None:
    from stemseg_core.geometry.positions_file import sensors_of, write_positions

    seq_dir = frames[0].parent if frames else None
    sensor = sensors_of(seq_dir, frames) if seq_dir is not None else None
    if sensor is None:
        print(f"{seq}: no positions written: needs depth_02/ (or velodyne/ with Tr_velo_cam) "
              f"for every frame and a calib file with P2 (stemseg synth --depth / --lidar)",
              file=sys.stderr)
        return
    numbers = [frame_number(p, i) for i, p in enumerate(frames)]
    path, total, placed = write_positions(child_path(out, seq, "sequence name", ".positions.txt"),
                                          seq_dir, frames, results, numbers, sensor)
    print(f"{seq}: {placed} of {total} instances with a position (from {sensor}) -> {path}")


def run(args: argparse.Namespace) -> int:
    from stemseg_core.evaluation.kitti_results import (
        AUTHORS_MIN_AREA,
        AUTHORS_MIN_TRACK_LENGTH,
        checkpoint_min_track_length,
    )
    from stemseg_core.evaluation.trackeval_kitti import find_seqmap, read_seqmap
    from stemseg_core.inference.tracker import StreamingTracker

    min_area = _parse_threshold(args.min_area, AUTHORS_MIN_AREA, "--min-area")
    min_len = _parse_threshold(args.min_track_length, AUTHORS_MIN_TRACK_LENGTH,
                               "--min-track-length")
    seqs = list(args.seqs) if args.seqs else list(read_seqmap(find_seqmap(args.data, args.split)))
    origin = "--seq" if args.seqs else f"the {args.split} seqmap of {args.data}"
    try:  # names become <out>/<seq>.txt: nothing may land outside --out
        for s in seqs:
            check_plain_name(s, "sequence name", source=origin)
    except ValueError as e:
        print(f"stemseg infer: error: {e}", file=sys.stderr)
        return 2
    frames_of = {s: sequence_frames(args.data, s) for s in seqs}  # fail early on a missing seq
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracker = StreamingTracker.from_checkpoint(args.checkpoint, device=args.device,
                                               overrides=(list(args.overrides)
                                                          + backend_overrides(args)) or None,
                                               **checkpoint_options(args))
    if min_len is None:
        min_len = checkpoint_min_track_length(tracker.cfg.inference, tracker.class_names)
        if min_len:
            print(f"dropping tracks shorter than {min_len} frames (the checkpoint's "
                  f"inference.min_track_length; --min-track-length 0 keeps all)")
    total_frames, total_time = 0, 0.0
    for seq in seqs:
        frames = frames_of[seq]
        txt, results, track_time = run_sequence(
            tracker, frames, out, seq, overlays=args.overlays, video=args.video, fps=args.fps,
            min_area=min_area, min_track_length=min_len)
        n_inst = sum(len(r.instances) for r in results)
        if args.positions:
            _write_positions(out, seq, frames, results)
        fps = len(frames) / track_time if track_time > 0 else float("inf")
        print(f"{seq}: {len(frames)} frames, {len(results)} results, {n_inst} instances, "
              f"{fps:.1f} fps (tracker) -> {txt}")
        total_frames += len(frames)
        total_time += track_time
    tracker.reset()
    if total_time > 0:
        print(f"total: {total_frames} frames in {total_time:.2f} s = "
              f"{total_frames / total_time:.1f} fps")
    return 0
