"""`stemseg bag eval`: replay a rosbag's image topic through the perception node and score it.

A command of the ``stemseg`` CLI registered by this package (entry point ``bag.eval`` of the
group ``stemseg.commands``, written by CMakeLists.txt). Importing this module loads no ROS:
the replay (:mod:`stemseg_ros.tools.replay`) is imported when the command runs; scoring and the
report are the core's (:mod:`stemseg_core.evaluation.replay_scoring`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stemseg_core.commands.bag import HelpWithDefaults

HELP = "replay a bag through the perception node and score it"
DESCRIPTION = """\
Replay a bag's image topic through the perception node and score what it publishes. The node runs
as its own process (`ros2 run stemseg_ros perception`, as on a robot) in a private ROS domain;
results are matched to frames by header stamp and written as KITTI MOTS <seq>.txt; with --gt the
TrackEval metrics (HOTA, DetA, AssA, sMOTSA, MOTSA, MOTSP, IDSW, IDF1) go to metrics.json.
report.md always has the weights' SHA-256, the frames sent / received / lost, latency percentiles
and plot, the node's memory over the run and an overlay contact sheet. With --gt and a depth
image topic in the bag (<camera ns>/depth/image_raw, as `bag from-kitti` writes from `stemseg
synth --depth`): the 3-D position error per class against the depth ground truth (median, p90,
metres and % of distance) and the share of instances with a position, in report.md and
positions.json (the node's masks lifted with the bag's depth by the node's own lifter). A bag
without depth but with LiDAR scans (/velodyne_points) is scored against the scans instead.

Modes: --rate R plays at R x the bag's timing (a camera at its real rate: frames the node cannot
keep up with are dropped and counted, as on the robot); --lockstep sends the next frame once the
node has taken the previous one (no drops). What lockstep gives is what the node computes with
its parameters: <seq>.txt then equals
  stemseg infer --checkpoint CKPT --data GT --seq SEQ --min-track-length 0 \\
      --backend B --precision P --set inference.flip_test=false
on the same frames, with B/P the backend and precision the node runs (its log and report.md say
which: by default the device's deployment default, see the README's Deployment section;
--node-arg backend=torch for eager): the node publishes every track as it goes (infer drops
tracks shorter than the checkpoint's inference.min_track_length afterwards), and it follows its
own flip_test parameter (default false), not the checkpoint's. The node's thresholds,
clip_overlap and flip_test given as --node-arg NAME=VALUE are infer's --set inference.NAME=VALUE.
Any rosbag2 (MCAP or sqlite3) with one sensor_msgs/Image or CompressedImage topic works.

examples:
  stemseg bag eval --bag kitti_0002.mcap --gt /data/kitti_mots --seq 0002 --out out/0002 \\
      --lockstep --checkpoint runs/kitti/last.pt --device cuda
  stemseg bag eval --bag my_drive/ --topic /front/image_raw/compressed --out out/drive --rate 1
  stemseg bag eval --bag drive.mcap --out out/x --node-arg seediness_threshold=0.8 \\
      --record out/x/bag
"""


def add_arguments(e: argparse.ArgumentParser) -> None:
    e.formatter_class = HelpWithDefaults
    e.add_argument("--bag", required=True, help="rosbag2 directory, or a .mcap / .db3 file")
    e.add_argument("--topic", help="image topic (default: the bag's only image topic)")
    e.add_argument("--gt", help="KITTI MOTS ground-truth root: compute TrackEval metrics")
    e.add_argument("--seq", help="sequence name of the results file (<seq>.txt) and in --gt "
                   "(default: from the bag's frames.csv source, else the bag name)")
    e.add_argument("--out", required=True, help="output folder (results, metrics, report)")
    mode = e.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=float, default=None,
                      help="play at RATE x the bag's timing (default 1.0)")
    mode.add_argument("--lockstep", action="store_true",
                      help="send the next frame once the node has taken the previous one; no "
                      "drops (results: see the description)")
    e.add_argument("--checkpoint", help="checkpoint for the node (default: the node's "
                   "`checkpoint` parameter default, the shipped demo model)")
    e.add_argument("--device", help="node device: auto, cpu or cuda")
    e.add_argument("--record", metavar="OUT_BAG",
                   help="also write the node's outputs (instances, overlay) to this bag")
    e.add_argument("--node-arg", action="append", default=[], metavar="K=V",
                   help="extra node parameter (repeatable), e.g. --node-arg clip_overlap=2")
    e.add_argument("--domain-id", type=int,
                   help="ROS_DOMAIN_ID for the node and the player (default: a free one)")
    e.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for the node to start / for the last results")
    e.add_argument("--no-overlays", action="store_true",
                   help="skip the contact sheet of overlays in the report")


def _error(msg: str, code: int = 2) -> int:
    print(f"stemseg bag eval: error: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from stemseg_core.data.rosbag_io import BagError, BagImageReader, read_frame_index
    from stemseg_core.data.safe_names import check_plain_name
    from stemseg_core.evaluation.replay_scoring import ReplaySetup
    from stemseg_ros.tools.replay import ReplayOptions, replay
    from stemseg_ros.tools.replay_node import ReplayError

    index = read_frame_index(args.bag)
    seq = args.seq or (index.seq if index else None) or Path(args.bag).name.split(".")[0]
    source = ("--seq" if args.seq else "the bag's frames.csv" if index and index.seq
              else "the bag's name")
    try:  # <out>/<seq>.txt: a name from data never becomes a path outside --out
        check_plain_name(seq, "sequence name", source=source)
    except ValueError as e:
        return _error(f"{e}; pass --seq with a plain name")
    if args.gt and not (args.seq or (index and index.seq)):
        return _error("--gt needs --seq (this bag has no frames.csv naming its KITTI sequence)")
    rate = 1.0 if args.rate is None else float(args.rate)
    if not args.lockstep and not rate > 0:
        return _error(f"--rate must be > 0, got {rate:g}")
    out = Path(args.out)
    try:
        with BagImageReader(args.bag, args.topic) as reader:
            topic, msgtype = reader.topic.name, reader.topic.msgtype
            setup = ReplaySetup(str(args.bag), topic, msgtype, seq, "", len(reader),
                                device=args.device or "(node default)")
            _check_first_frame(reader, args.bag, topic, seq)
            out.mkdir(parents=True, exist_ok=True)
            opts = ReplayOptions(topic=topic, msgtype=msgtype, lockstep=args.lockstep,
                                 rate=rate, checkpoint=args.checkpoint, device=args.device,
                                 node_args=list(args.node_arg), domain_id=args.domain_id,
                                 timeout=args.timeout, record=args.record,
                                 node_log=out / "node.log")
            setup.mode = opts.mode
            from tqdm import tqdm

            frames = tqdm(reader, total=setup.frames_in_bag, unit="frame", desc="replay",
                          leave=False, disable=None)
            outcome = replay(frames, opts)
    except (BagError, FileNotFoundError) as e:
        return _error(str(e))
    except ReplayError as e:
        return _error(str(e), 1)
    return _score_and_report(args, setup, outcome, index)


def _check_first_frame(reader, bag: str, topic: str, seq: str) -> None:
    """Print what the bag holds; the first image must decode as the node will decode it."""
    from stemseg_core.data.rosbag_io import BagImageReader

    with BagImageReader(bag, topic) as again:  # `reader` stays unread for the replay
        first = next(iter(again), None)
        enc = first.encoding if first else "?"
        print(f"bag {bag}: {len(reader)} frames on {topic} "
              f"({reader.topic.msgtype.rsplit('/', 1)[-1]}, {enc}); sequence {seq}")
        if first is not None:
            first.decode()  # BagError naming the encoding when the codec cannot take it


def _score_and_report(args: argparse.Namespace, setup, outcome, index) -> int:
    from stemseg_core.evaluation.replay_scoring import (
        overlays_from_bag,
        score_replay,
        write_bag_eval_report,
    )
    from stemseg_core.evaluation.report import print_metrics

    out = Path(args.out)
    try:
        result = score_replay(out, setup, outcome, index.stamp_to_frame if index else None,
                              gt=args.gt)
    except (FileNotFoundError, ValueError) as e:
        return _error(f"evaluation failed: {e}")
    print(f"wrote {result.results_file}")
    if result.metrics is not None:
        print_metrics(result.metrics, f"KITTI MOTS (bag replay): {setup.seq}")
    overlays = [] if args.no_overlays else overlays_from_bag(args.bag, setup.topic,
                                                             outcome.results)
    report = write_bag_eval_report(out, result, overlays, record_bag=args.record)
    if args.gt:
        _score_positions(args, setup, outcome, index, report)
    _print_summary(result.stats)
    print(f"report: {report}")
    return 0 if result.stats.received else 1


def _score_positions(args: argparse.Namespace, setup, outcome, index, report: Path) -> None:
    """With a depth (else LiDAR) topic in the bag: the 3-D error table (report.md,
    positions.json)."""
    import json

    from stemseg_core.data.rosbag_io import BagError
    from stemseg_core.evaluation.bag_positions import find_sensor_topic, score_bag_positions
    from stemseg_core.evaluation.position_error import markdown, summarize
    from stemseg_core.evaluation.replay_scoring import frame_numbers

    sensor, depth_topic = find_sensor_topic(args.bag, setup.topic) or (None, None)
    if depth_topic is None:
        return
    try:
        pe = score_bag_positions(args.bag, depth_topic, outcome.results, outcome.stamps_ns,
                                 frame_numbers(outcome.stamps_ns,
                                               index.stamp_to_frame if index else None),
                                 args.gt, setup.seq, sensor=sensor)
    except (BagError, FileNotFoundError, ValueError) as e:
        print(f"3-D score skipped: {e}", file=sys.stderr)
        return
    if pe is None:
        print(f"3-D score skipped: no calibration for sequence {setup.seq} in {args.gt}",
              file=sys.stderr)
        return
    summary = summarize(pe)
    (Path(args.out) / "positions.json").write_text(json.dumps(summary, indent=2) + "\n")
    section = markdown(summary, f"{depth_topic} in the bag; positions from the node's masks "
                       f"by its use_{sensor} lifter", reference=sensor)
    with open(report, "a") as f:
        f.write("\n" + section)
    print(section)


def _print_summary(stats) -> None:
    lat = stats.latency_summary()
    lat_txt = (f"latency p50 {lat['p50']:.0f} ms / p90 {lat['p90']:.0f} / p99 {lat['p99']:.0f} "
               f"/ max {lat['max']:.0f}") if lat else "no results"
    print(f"frames: {stats.frames_in_bag} in bag, {stats.sent} sent, {stats.received} received, "
          f"{len(stats.lost_frames)} lost; {stats.throughput_fps():.2f} frames/s; {lat_txt}")
    print(f"weights: {stats.extra.get('checkpoint')} (SHA-256 "
          f"{stats.extra.get('weights SHA-256')})")
    mem = stats.memory_summary()
    if mem:
        print(f"node memory (RSS): {mem['first']:.0f} MiB at the start, {mem['max']:.0f} max, "
              f"{mem['last']:.0f} at the end ({mem['growth_second_half']:+.1f} MiB over the "
              f"second half)")
