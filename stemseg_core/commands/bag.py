"""`stemseg bag`: KITTI sequences -> rosbag2, and rosbag replay evaluation of the ROS 2 node."""
from __future__ import annotations

import argparse
import sys

HELP = "rosbag tools: KITTI -> rosbag2 (from-kitti), replay a bag through the node (eval)"
DESCRIPTION = """\
rosbag2 tools (MCAP or sqlite3, read and written with the pure-Python `rosbags`).

  from-kitti  a KITTI MOTS / tracking sequence (training/image_02/<seq>/*.png) -> rosbag2 with
              sensor_msgs/Image (or CompressedImage png) and CameraInfo (+ depth images and
              LiDAR scans when the data set has them), 10 Hz unless the
              sequence has a timestamps file. Frame k gets stamp t0 + k/rate; frames.csv in the
              bag maps stamps back to frame numbers.
  from-kitti-raw  the same for a KITTI raw drive (<date>/<date>_drive_<NNNN>_sync/image_02/
              data, velodyne_points, calib_*.txt; depth-completion ground truth when given).
  eval        replay a bag's image topic through the perception node (its own process, over
              DDS), collect ~/instances, write KITTI MOTS results, metrics (with --gt) and a
              report (latency, drops, overlays). Comes with the ROS 2 package stemseg_ros.
  bench       measure the running node as ros2_benchmark does: fixed rates, the peak rate with
              <= 5 % frames lost, latency, CPU, memory, node vs bare tracker. Comes with the
              ROS 2 package stemseg_ros.
  soak        the node at its peak rate for 20 minutes of camera time, then 50 lifecycle
              cycles; RSS, threads and open files over time (plot), fails on growth. Comes
              with the ROS 2 package stemseg_ros (`make soak`).

Examples:
  stemseg bag from-kitti --kitti data/synth --seq 0010 --out drive.mcap
  stemseg bag eval --bag drive.mcap --gt data/synth --seq 0010 --out out/bag --lockstep \\
      --checkpoint checkpoints/stemseg_demo.pt
"""

#: Subcommands the ROS 2 package stemseg_ros adds (entry points ``bag.<name>`` of the group
#: stemseg.commands, see stemseg_core/cli.py); without it they print EXTERNAL_HINT.
EXTERNAL = {"eval": "replay a bag through the perception node and score it",
            "bench": "measure the node as ros2_benchmark does: rates, peak, latency, CPU",
            "soak": "soak the node: peak rate for 20 min of camera time, 50 lifecycle cycles"}
EXTERNAL_HINT = """\
this command comes with the ROS 2 package stemseg_ros, which is not installed in this
environment. In the repository: `make setup` (it colcon-builds the package), then
`. .venv/bin/activate`. With a ROS 2 installation: `colcon build` the repository and
`source install/setup.bash`. `pip install stemseg` alone gives the ROS-free commands only."""

FROM_KITTI_DESCRIPTION = """\
Write one KITTI MOTS / KITTI tracking sequence (<kitti>/training/image_02/<seq>/*.png, the layout
`stemseg synth` writes too) into a rosbag2: sensor_msgs/Image rgb8 (another encoding with
--encoding; or CompressedImage: png with --compressed, jpeg with --jpeg-quality) on --topic and
CameraInfo (K and P from <split>/calib/<seq>.txt when present) on <topic's
namespace>/camera_info; when the data set has them, the depth image
(<split>/depth_02/<seq>/<frame>.png, uint16 mm) as 16UC1 on <topic's
namespace>/depth/image_raw and the LiDAR scan (<split>/velodyne/<seq>/<frame>.bin) as
PointCloud2 on --points-topic.
At --rate Hz, or at the sequence's own times when a timestamps file is found
(image_02/<seq>/times.txt, <split>/timestamps/<seq>.txt, <split>/oxts/<seq>/timestamps.txt).
16-bit PNGs stay 16-bit. frames.csv in the bag folder maps stamps back to frame numbers.
A KITTI raw drive (<date>_drive_<NNNN>_sync): `stemseg bag from-kitti-raw`.

examples:
  stemseg bag from-kitti --kitti /data/kitti_mots --seq 0002 --out kitti_0002.mcap
  stemseg bag from-kitti --kitti data/synth --seq 0030 --out drive_db3 --format sqlite3 \\
      --compressed
  stemseg bag from-kitti --kitti data/synth720 --seq 0000 --out drive_jpeg.mcap \\
      --jpeg-quality 95
  stemseg bag from-kitti --kitti data/synth --seq 0000 --out drive_uyvy.mcap --encoding yuv422
"""


class HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout; appends a default only where there is one to tell."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.Action:
    """The bag subcommands of this package; returns the subparsers (the CLI adds EXTERNAL)."""
    sub = parser.add_subparsers(dest="bag_command", metavar="BAG_COMMAND")

    p = sub.add_parser("from-kitti", help="KITTI sequence -> rosbag2 (Image/CompressedImage + "
                       "CameraInfo)", description=FROM_KITTI_DESCRIPTION,
                       formatter_class=HelpWithDefaults)
    p.add_argument("--kitti", required=True,
                   help="KITTI MOTS/tracking root (holding training/image_02/<seq>/)")
    p.add_argument("--seq", required=True, help="sequence, e.g. 0010 or 10")
    p.add_argument("--out", required=True, help="bag directory to create")
    p.add_argument("--format", choices=("mcap", "sqlite3"), default="mcap",
                   help="rosbag2 storage")
    p.add_argument("--compressed", action="store_true",
                   help="sensor_msgs/CompressedImage (lossless png) instead of Image")
    p.add_argument("--jpeg-quality", type=int, default=None, metavar="Q",
                   help="sensor_msgs/CompressedImage as JPEG of quality Q (0-100; cameras send "
                        "90-95), as a camera driver's compressed topic; 8-bit images only")
    p.add_argument("--encoding", default=None, metavar="ENC",
                   help="send 8-bit RGB frames as sensor_msgs/Image in this encoding instead of "
                        "rgb8, e.g. yuv422 (UYVY 4:2:2, BT.601 limited range, as V4L2 cameras "
                        "send it), nv12, bgr8, bayer_rggb8, mono8")
    p.add_argument("--topic", default="/camera/image_raw", help="image topic")
    p.add_argument("--frame-id", default="camera", help="header.frame_id of the images")
    p.add_argument("--rate", type=float, default=10.0,
                   help="frame rate (Hz) when the sequence has no timestamps file")
    p.add_argument("--points-topic", default="/velodyne_points",
                   help="PointCloud2 topic of the LiDAR scans (when the data set has them)")
    p.add_argument("--lidar-frame-id", default="velodyne",
                   help="header.frame_id of the LiDAR scans")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    p.set_defaults(_run=_run_from_kitti)

    from stemseg_core.commands import bag_raw  # from-kitti-raw: its own module
    bag_raw.add_parser(sub, HelpWithDefaults)
    return sub


def _run_from_kitti(args: argparse.Namespace) -> int:
    from stemseg_core.data.rosbag_io import BagError, write_kitti_bag

    try:
        s = write_kitti_bag(args.kitti, args.seq, args.out, storage=args.format,
                            compressed=args.compressed, topic=args.topic,
                            frame_id=args.frame_id, rate=args.rate, overwrite=args.overwrite,
                            progress=True, points_topic=args.points_topic,
                            lidar_frame_id=args.lidar_frame_id,
                            jpeg_quality=args.jpeg_quality, image_encoding=args.encoding)
    except (BagError, ValueError) as err:
        print(f"stemseg bag from-kitti: error: {err}", file=sys.stderr)
        return 2
    h, w = s.image_size
    timing = (f"times from {s.timestamps_file}" if s.timestamps_file else f"{args.rate:g} Hz")
    calib = f"K from {s.calibration_file}" if s.calibration_file else "K: plausible pinhole"
    pixels = s.encoding + (f" as jpeg q{args.jpeg_quality}" if args.jpeg_quality is not None
                           else " as png" if args.compressed else "")
    print(f"wrote {s.bag}: {len(s.frames)} frames {w}x{h} {pixels} on {s.topic} "
          f"({s.msgtype.rsplit('/', 1)[-1]}), {s.info_topic} ({calib}), {timing}, "
          f"{args.format}")
    if s.depth_topic:
        print(f"  depth: {s.depth_frames} frames 16UC1 mm on {s.depth_topic}")
    if s.points_topic:
        print(f"  lidar: {s.points_frames} scans PointCloud2 on {s.points_topic} "
              f"(frame {args.lidar_frame_id})")
    return 0


def run(args: argparse.Namespace) -> int:
    """`stemseg bag` without a subcommand (each subcommand sets its own ``_run``)."""
    print("usage: stemseg bag {from-kitti,eval,bench} ... (see stemseg bag --help)",
          file=sys.stderr)
    return 2
