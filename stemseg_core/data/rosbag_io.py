"""rosbag2 input/output for camera streams, without ROS: one import for the bag tools.

The pieces live by concern; this module keeps the public names in one place:

- :mod:`~stemseg_core.data.bag_format`: message types, defaults, errors, ``frames.csv``;
- :mod:`~stemseg_core.data.bag_writer`: KITTI sequence -> rosbag2 (:func:`write_kitti_bag`);
- :mod:`~stemseg_core.data.bag_reader`: a bag's image topic -> frames (:class:`BagImageReader`);
- :mod:`~stemseg_core.data.kitti_layout` / :mod:`~stemseg_core.data.kitti_camera`: where a
  sequence's images are, its calibration and frame times;
- :mod:`~stemseg_core.data.image_codec`: the pixels.
"""
from __future__ import annotations

from stemseg_core.data.bag_format import (
    CAMERA_INFO_MSGTYPE,
    COMPRESSED_MSGTYPE,
    DEFAULT_FRAME_ID,
    DEFAULT_TOPIC,
    FRAMES_CSV,
    IMAGE_MSGTYPE,
    IMAGE_MSGTYPES,
    AmbiguousTopicError,
    BagError,
    CorruptBagError,
    EmptyBagError,
    FrameIndex,
    NoImageTopicError,
    UnknownTopicError,
    read_frame_index,
)
from stemseg_core.data.bag_reader import (
    BagImage,
    BagImageReader,
    TopicInfo,
    decode_image_msg,
    list_topics,
    read_image_frames,
    select_image_topic,
    to_rgb8,
)
from stemseg_core.data.bag_writer import (
    KittiBagSummary,
    encode_png,
    encoding_of,
    info_topic_for,
    read_png,
    write_kitti_bag,
)
from stemseg_core.data.kitti_camera import (
    DEFAULT_RATE,
    DEFAULT_START_NS,
    find_calibration,
    find_timestamps_file,
    frame_stamps,
    plausible_projection,
    read_projection,
)
from stemseg_core.data.kitti_layout import seq_name, sequence_dir

__all__ = [
    "CAMERA_INFO_MSGTYPE", "COMPRESSED_MSGTYPE", "DEFAULT_FRAME_ID", "DEFAULT_RATE",
    "DEFAULT_START_NS", "DEFAULT_TOPIC", "FRAMES_CSV", "IMAGE_MSGTYPE", "IMAGE_MSGTYPES",
    "AmbiguousTopicError", "BagError", "BagImage", "BagImageReader", "CorruptBagError",
    "EmptyBagError", "FrameIndex", "KittiBagSummary", "NoImageTopicError", "TopicInfo",
    "UnknownTopicError", "decode_image_msg", "encode_png", "encoding_of", "find_calibration",
    "find_timestamps_file", "frame_stamps", "info_topic_for", "list_topics",
    "plausible_projection", "read_frame_index", "read_image_frames", "read_png",
    "read_projection", "select_image_topic", "seq_name", "sequence_dir", "to_rgb8",
    "write_kitti_bag",
]
