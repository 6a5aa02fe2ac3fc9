"""`stemseg bag from-kitti-raw`: a KITTI raw drive -> rosbag2 (the sibling of from-kitti)."""
from __future__ import annotations

import argparse
import sys

HELP = "KITTI raw drive (<date>_drive_<NNNN>_sync) -> rosbag2 (Image + CameraInfo + LiDAR)"
DESCRIPTION = """\
Write one KITTI raw drive (the rectified `_sync` download) into a rosbag2, with the same topics
as from-kitti:

  <raw>/<date>/<date>_drive_<NNNN>_sync/image_02/data/*.png   -> --topic (rgb8 Image, or png
                                                                  CompressedImage)
  <raw>/<date>/calib_cam_to_cam.txt (P_rect_02, S_rect_02)    -> <topic ns>/camera_info
                                                                  (K = P_rect_02's 3x3, P = it)
  <drive>/velodyne_points/data/*.bin                          -> --points-topic (PointCloud2)
  depth-completion ground truth, when found                   -> <topic ns>/depth/image_raw
      <drive>/proj_depth/groundtruth/image_02/*.png, or under --depth-root/{train,val}/<drive>/
      (uint16 value/256 = metres there; written as 32FC1 metres, NaN = none, because 16UC1
      millimetres stop at 65.5 m. from-kitti's depth_02 is uint16 millimetres -> 16UC1.)

Stamps are the drive's image_02/timestamps.txt (absolute UTC); each scan gets its image's stamp
(the _sync data pairs them one to one). The command prints the LiDAR -> camera transform for the
node: lidar_to_camera = [I | K^-1 P_rect_02[:,3]] R_rect_00 [R|T] (camera 2's rectified optical
frame, so K alone projects the points where P_rect_02 does); or pass -p calib_file:=<raw>/<date>.

examples:
  stemseg bag from-kitti-raw --drive /data/raw/2011_09_26/2011_09_26_drive_0005_sync \\
      --out drive5.mcap
  stemseg bag from-kitti-raw --raw /data/raw --drive 2011_09_26_drive_0005 --out drive5.mcap \\
      --depth-root /data/data_depth_annotated
"""


def add_parser(sub: argparse._SubParsersAction, formatter: type) -> argparse.ArgumentParser:
    """Adds ``from-kitti-raw`` to ``stemseg bag``'s subparsers."""
    from stemseg_core.data.bag_format import (
        DEFAULT_FRAME_ID,
        DEFAULT_LIDAR_FRAME_ID,
        DEFAULT_POINTS_TOPIC,
        DEFAULT_TOPIC,
    )

    p = sub.add_parser("from-kitti-raw", help=HELP, description=DESCRIPTION,
                       formatter_class=formatter)
    p.add_argument("--drive", required=True,
                   help="the drive folder, or its name <date>_drive_<NNNN>[_sync] with --raw")
    p.add_argument("--raw", help="KITTI raw root (holding <date>/ folders)")
    p.add_argument("--depth-root", help="KITTI depth-completion root (data_depth_annotated)")
    p.add_argument("--out", required=True, help="bag directory to create")
    p.add_argument("--format", choices=("mcap", "sqlite3"), default="mcap",
                   help="rosbag2 storage")
    p.add_argument("--compressed", action="store_true",
                   help="sensor_msgs/CompressedImage (lossless png) instead of Image")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help="image topic")
    p.add_argument("--frame-id", default=DEFAULT_FRAME_ID, help="header.frame_id of the images")
    p.add_argument("--points-topic", default=DEFAULT_POINTS_TOPIC,
                   help="PointCloud2 topic of the LiDAR scans")
    p.add_argument("--lidar-frame-id", default=DEFAULT_LIDAR_FRAME_ID,
                   help="header.frame_id of the LiDAR scans")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    p.set_defaults(_run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from stemseg_core.config import ConfigError
    from stemseg_core.data.bag_writer import write_frames_bag
    from stemseg_core.data.kitti_calib import lidar_to_camera2, read_kitti_calib
    from stemseg_core.data.kitti_raw import raw_frame_source

    try:
        src = raw_frame_source(args.drive, args.raw, args.depth_root)
        s = write_frames_bag(src, args.out, storage=args.format, compressed=args.compressed,
                             topic=args.topic, frame_id=args.frame_id, overwrite=args.overwrite,
                             progress=True, points_topic=args.points_topic,
                             lidar_frame_id=args.lidar_frame_id)
        T = lidar_to_camera2(read_kitti_calib(src.calibration_file))
    except (ConfigError, OSError) as err:
        print(f"stemseg bag from-kitti-raw: error: {err}", file=sys.stderr)
        return 2
    h, w = s.image_size
    print(f"wrote {s.bag}: {len(s.frames)} frames {w}x{h} {s.encoding} on {s.topic}, "
          f"{s.info_topic} (K from {s.calibration_file}), times from {s.timestamps_file}, "
          f"{args.format}")
    if s.depth_topic:
        print(f"  depth: {s.depth_frames} frames {s.depth_encoding} metres on {s.depth_topic}")
    if s.points_topic:
        print(f"  lidar: {s.points_frames} scans PointCloud2 on {s.points_topic} "
              f"(frame {args.lidar_frame_id})")
    if T is not None:
        nums = ", ".join(f"{v:.9g}" for v in T.reshape(-1))
        print(f"  node: -p use_lidar:=true -p lidar_to_camera:=\"[{nums}]\"")
    return 0
