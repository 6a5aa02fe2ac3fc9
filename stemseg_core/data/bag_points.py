"""A bag's LiDAR scans (sensor_msgs/PointCloud2) as x y z arrays, without ROS (``rosbags``).

Used by ``stemseg bag eval``'s 3-D score against LiDAR. The fields ``x``, ``y``, ``z`` must be
float32; they are read at their offsets inside ``point_step`` (any other fields, padding,
row padding and either byte order are fine). Non-finite points are left out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stemseg_core.data.bag_format import DEFAULT_POINTS_TOPIC, POINTCLOUD_MSGTYPE, BagError
from stemseg_core.data.bag_reader import TopicInfo

#: sensor_msgs/PointField FLOAT32.
FLOAT32 = 7
#: Largest cloud read (points); a 64-beam scan has ~120 k.
MAX_POINTS = 2_000_000


def find_points_topic(topics: dict[str, TopicInfo]) -> str | None:
    """``/velodyne_points`` when the bag has it as PointCloud2, else its only PointCloud2 topic,
    else None (none, or several and none of them the default)."""
    clouds = [t.name for t in topics.values() if t.msgtype == POINTCLOUD_MSGTYPE]
    if DEFAULT_POINTS_TOPIC in clouds:
        return DEFAULT_POINTS_TOPIC
    return clouds[0] if len(clouds) == 1 else None


def cloud_xyz(msg: object, max_points: int = MAX_POINTS) -> np.ndarray:
    """(N, 3) float32 x y z of a deserialized PointCloud2; BagError naming what is wrong."""
    h, w, step, row = (int(msg.height), int(msg.width), int(msg.point_step),
                       int(msg.row_step))
    if h * w > max_points:
        raise BagError(f"PointCloud2 of {h}x{w} points: more than {max_points}")
    fields = {f.name: f for f in msg.fields}
    for axis in "xyz":
        f = fields.get(axis)
        if f is None or f.datatype != FLOAT32 or not 0 <= f.offset <= step - 4:
            raise BagError(f"PointCloud2 field {axis!r} missing or not float32 inside "
                           f"point_step {step}")
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if row < w * step or data.size < h * row:
        raise BagError(f"PointCloud2 {h}x{w}, point_step {step}, row_step {row}: data has "
                       f"{data.size} bytes")
    pts = data[:h * row].reshape(h, row)[:, :w * step].reshape(h * w, step)
    dt = np.dtype(">f4" if msg.is_bigendian else "<f4")
    xyz = np.stack([np.ascontiguousarray(pts[:, fields[a].offset:fields[a].offset + 4])
                    .view(dt).reshape(-1) for a in "xyz"], axis=1).astype(np.float32)
    return xyz[np.isfinite(xyz).all(axis=1)]


def read_clouds(bag: str | Path, topic: str) -> dict[int, np.ndarray]:
    """{stamp ns (header): (N, 3) float32} of every scan on ``topic``."""
    from rosbags.highlevel import AnyReader

    from stemseg_core.data.bag_reader import _corrupt, _reader_errors

    out: dict[int, np.ndarray] = {}
    try:
        with AnyReader([Path(bag)]) as reader:
            conns = [c for c in reader.connections if c.topic == topic]
            if not conns:
                raise BagError(f"{bag} has no topic {topic}")
            for conn, _, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                st = msg.header.stamp
                out[st.sec * 1_000_000_000 + st.nanosec] = cloud_xyz(msg)
    except BagError:
        raise
    except _reader_errors() as e:
        raise _corrupt(Path(bag), e, f"reading {topic}") from None
    return out


__all__ = ["MAX_POINTS", "cloud_xyz", "find_points_topic", "read_clouds"]
