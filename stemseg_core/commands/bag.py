"""`stemseg bag`: KITTI sequences -> rosbag2, and rosbag replay evaluation of the ROS 2 node."""
from __future__ import annotations

import argparse
import importlib
import sys

HELP = "rosbag tools: KITTI -> rosbag2 (from-kitti), replay a bag through the node (eval)"
DESCRIPTION = """\
rosbag2 tools (MCAP or sqlite3, read and written with the pure-Python `rosbags`).

  from-kitti  a KITTI MOTS / tracking sequence (training/image_02/<seq>/*.png) -> rosbag2 with
              sensor_msgs/Image (or CompressedImage png) and CameraInfo, 10 Hz unless the
              sequence has a timestamps file. Frame k gets stamp t0 + k/rate; frames.csv in the
              bag maps stamps back to frame numbers.
  eval        replay a bag's image topic through the perception node (its own process, over
              DDS), collect ~/instances, write KITTI MOTS results, metrics (with --gt) and a
              report (latency, drops, overlays). Needs the ROS 2 environment.

Examples:
  stemseg bag from-kitti --kitti data/synth --seq 0010 --out drive.mcap
  stemseg bag eval --bag drive.mcap --gt data/synth --seq 0010 --out out/bag --lockstep \\
      --checkpoint checkpoints/stemseg_demo.pt
"""

ROS_HINT = "needs the ROS 2 environment: run make setup and . .venv/bin/activate"

FROM_KITTI_DESCRIPTION = """\
Write one KITTI MOTS / KITTI tracking sequence (<kitti>/training/image_02/<seq>/*.png, the layout
`stemseg synth` writes too) into a rosbag2: sensor_msgs/Image rgb8 (or CompressedImage png with
--compressed) on --topic and CameraInfo on <topic's namespace>/camera_info, at --rate Hz, or at
the sequence's own times when a timestamps file is found (image_02/<seq>/times.txt,
<split>/timestamps/<seq>.txt, <split>/oxts/<seq>/timestamps.txt). 16-bit PNGs stay 16-bit.
frames.csv in the bag folder maps stamps back to frame numbers.

examples:
  stemseg bag from-kitti --kitti /data/kitti_mots --seq 0002 --out kitti_0002.mcap
  stemseg bag from-kitti --kitti data/synth --seq 0030 --out drive_db3 --format sqlite3 \\
      --compressed
"""

EVAL_DESCRIPTION = """\
Replay a bag's image topic through the perception node and score what it publishes. The node runs
as its own process (`stemseg-perception`, as on a robot) in a private ROS domain; results are
matched to frames by header stamp and written as KITTI MOTS <seq>.txt; with --gt the TrackEval
metrics (HOTA, DetA, AssA, sMOTSA, MOTSA, MOTSP, IDSW, IDF1) go to metrics.json. report.md always
has the frames sent / received / lost, latency percentiles and plot, the node's memory over the
run and an overlay contact sheet.

Modes: --rate R plays at R x the bag's timing (a camera at its real rate: frames the node cannot
keep up with are dropped and counted, as on the robot); --lockstep sends the next frame once the
node has taken the previous one (no drops; results equal `stemseg infer` on the same frames).
Any rosbag2 (MCAP or sqlite3) with one sensor_msgs/Image or CompressedImage topic works.

examples:
  stemseg bag eval --bag kitti_0002.mcap --gt /data/kitti_mots --seq 0002 --out out/0002 \\
      --lockstep --checkpoint runs/kitti/last.pt --device cuda
  stemseg bag eval --bag my_drive/ --topic /front/image_raw/compressed --out out/drive --rate 1
  stemseg bag eval --bag drive.mcap --out out/x --node-arg seediness_threshold=0.8 \\
      --record out/x/bag
"""


class _HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout; appends a default only where there is one to tell."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", metavar="BAG_COMMAND")

    p = sub.add_parser("from-kitti", help="KITTI sequence -> rosbag2 (Image/CompressedImage + "
                       "CameraInfo)", description=FROM_KITTI_DESCRIPTION,
                       formatter_class=_HelpWithDefaults)
    p.add_argument("--kitti", required=True,
                   help="KITTI MOTS/tracking root (holding training/image_02/<seq>/)")
    p.add_argument("--seq", required=True, help="sequence, e.g. 0010 or 10")
    p.add_argument("--out", required=True, help="bag directory to create")
    p.add_argument("--format", choices=("mcap", "sqlite3"), default="mcap",
                   help="rosbag2 storage")
    p.add_argument("--compressed", action="store_true",
                   help="sensor_msgs/CompressedImage (lossless png) instead of Image")
    p.add_argument("--topic", default="/camera/image_raw", help="image topic")
    p.add_argument("--frame-id", default="camera", help="header.frame_id of the images")
    p.add_argument("--rate", type=float, default=10.0,
                   help="frame rate (Hz) when the sequence has no timestamps file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    p.set_defaults(_bag_run=_run_from_kitti)

    e = sub.add_parser("eval", help="replay a bag through the perception node and score it",
                       description=EVAL_DESCRIPTION, formatter_class=_HelpWithDefaults)
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
                      help="send the next frame once the node has taken the previous one; "
                      "no drops, results equal `stemseg infer` on the same frames")
    e.add_argument("--checkpoint", help="checkpoint for the node (default: the node's "
                   "parameter default)")
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
    e.set_defaults(_bag_run=_run_eval)


def _run_from_kitti(args: argparse.Namespace) -> int:
    from stemseg_core.data.rosbag_io import BagError, write_kitti_bag

    try:
        s = write_kitti_bag(args.kitti, args.seq, args.out, storage=args.format,
                            compressed=args.compressed, topic=args.topic,
                            frame_id=args.frame_id, rate=args.rate, overwrite=args.overwrite,
                            progress=True)
    except (BagError, ValueError) as err:
        print(f"stemseg bag from-kitti: error: {err}", file=sys.stderr)
        return 2
    h, w = s.image_size
    timing = (f"times from {s.timestamps_file}" if s.timestamps_file else f"{args.rate:g} Hz")
    calib = f"K from {s.calibration_file}" if s.calibration_file else "K: plausible pinhole"
    print(f"wrote {s.bag}: {len(s.frames)} frames {w}x{h} {s.encoding} on {s.topic} "
          f"({s.msgtype.rsplit('/', 1)[-1]}), {s.info_topic} ({calib}), {timing}, "
          f"{args.format}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module("stemseg_ros.bag_eval")
    except ImportError as err:
        print(f"stemseg bag eval: error: {ROS_HINT} ({err})", file=sys.stderr)
        return 2
    return int(module.run(args) or 0)


def run(args: argparse.Namespace) -> int:
    fn = getattr(args, "_bag_run", None)
    if fn is None:
        print("usage: stemseg bag {from-kitti,eval} ... (see stemseg bag --help)",
              file=sys.stderr)
        return 2
    return fn(args)
