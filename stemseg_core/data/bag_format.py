"""What stemseg's rosbag2 tools agree on: message types, defaults, errors, frames.csv.

Bags are read and written with the pure-Python ``rosbags`` (no ROS needed): see
:mod:`~stemseg_core.data.bag_writer` and :mod:`~stemseg_core.data.bag_reader`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from stemseg_core.errors import DataFormatError

IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
COMPRESSED_MSGTYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_MSGTYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_MSGTYPES = (IMAGE_MSGTYPE, COMPRESSED_MSGTYPE)
POINTCLOUD_MSGTYPE = "sensor_msgs/msg/PointCloud2"
#: LiDAR topic and frame of bags written here (KITTI's names).
DEFAULT_POINTS_TOPIC = "/velodyne_points"
DEFAULT_LIDAR_FRAME_ID = "velodyne"



def is_depth_topic(name: str) -> bool:
    """A depth image topic (a ``depth`` namespace, e.g. ``/camera/depth/image_raw``): not a
    colour stream to choose when a bag's image topic is picked automatically."""
    return "depth" in name.split("/")


DEFAULT_TOPIC = "/camera/image_raw"
DEFAULT_FRAME_ID = "camera"
#: Name of the index written next to a bag: frame number, stamp, file, sequence per frame.
FRAMES_CSV = "frames.csv"


class BagError(DataFormatError):
    """A bag cannot be read or written as asked; the message says why and what to do."""


class NoImageTopicError(BagError):
    """The bag has no sensor_msgs/Image or sensor_msgs/CompressedImage topic."""


class UnknownTopicError(BagError):
    """The requested topic is not in the bag (or is not an image topic)."""


class AmbiguousTopicError(BagError):
    """Several image topics and no --topic to choose one."""


class EmptyBagError(BagError):
    """The image topic holds no messages."""


class CorruptBagError(BagError):
    """The bag file is truncated, corrupt, or not a rosbag2 at all."""


@dataclass
class FrameIndex:
    """frames.csv of a bag written by :func:`write_kitti_bag`: stamp -> KITTI frame number."""

    stamp_to_frame: dict[int, int]
    seq: str | None


def read_frame_index(bag: str | Path) -> FrameIndex | None:
    """The frames.csv next to / inside a bag, or None for bags not written here."""
    p = Path(bag)
    p = p / FRAMES_CSV if p.is_dir() else p.parent / FRAMES_CSV
    if not p.is_file():
        return None
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    seqs = {r.get("seq") for r in rows if r.get("seq")}
    return FrameIndex({int(r["stamp_ns"]): int(r["frame"]) for r in rows},
                      seqs.pop() if len(seqs) == 1 else None)
