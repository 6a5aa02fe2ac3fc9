"""The receiving side of a replay: the node's results matched to sent frames, its /diagnostics
counters, and an optional recording of its outputs to a new rosbag2."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.serialization import deserialize_message

from stemseg_core.data.rosbag_io import BagError
from stemseg_ros import names
from stemseg_ros.msg import TrackedInstanceArray
from stemseg_ros.tools.replay_node import ReplayError


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def is_node_status(status_name: str) -> bool:
    """Whether a /diagnostics status is the perception node's (root namespace)."""
    return (names.is_status_of(status_name)
            or status_name.startswith(f"{names.NODE_NAME}:"))  # name without the namespace


class Collector:
    """Receives ``~/instances`` (serialized) and matches them to sent frames by header stamp.

    Thread-safe: the callbacks run on the executor's thread, the player waits on ``cond``.
    """

    def __init__(self, recorder: OutputRecorder | None = None):
        self.stamp_index: dict[int, int] = {}
        self.recv_s: list[float | None] = []
        self.msgs: list[object | None] = []
        self.unmatched = 0
        self.duplicates = 0
        self.received = 0
        self.cond = threading.Condition()
        self.recorder = recorder
        self.node_stats: dict[str, str] = {}
        #: (monotonic time, node RSS in MiB) from each /diagnostics message of the node
        self.memory: list[tuple[float, float]] = []

    def reset(self) -> None:
        """Forget the frames of the last run (the node's counters and memory samples stay)."""
        with self.cond:
            self.stamp_index.clear()
            self.recv_s.clear()
            self.msgs.clear()
            self.unmatched = self.duplicates = self.received = 0

    def expect(self, stamp: int) -> int:
        """Register the stamp of a frame about to be sent; returns its index."""
        with self.cond:
            if stamp in self.stamp_index:
                raise ReplayError(f"two images in the bag have the header stamp {stamp} ns: "
                                  f"results cannot be matched to frames by stamp")
            self.stamp_index[stamp] = len(self.msgs)
            self.msgs.append(None)
            self.recv_s.append(None)
            return len(self.msgs) - 1

    def on_instances(self, raw: bytes) -> None:
        t = time.monotonic()
        msg = deserialize_message(raw, TrackedInstanceArray)
        stamp = stamp_ns(msg.header)
        if self.recorder is not None:
            self.recorder.write("instances", stamp, raw)
        with self.cond:
            i = self.stamp_index.get(stamp)
            if i is None:
                self.unmatched += 1
            elif self.msgs[i] is not None:
                self.duplicates += 1
            else:
                self.msgs[i] = msg
                self.recv_s[i] = t
                self.received += 1
            self.cond.notify_all()

    def on_diagnostics(self, msg) -> None:
        """Keep the node's pipeline counters (frames_in, dropped_frames, ...)."""
        for st in msg.status:
            if not is_node_status(st.name):
                continue
            values = {kv.key: kv.value for kv in st.values}
            with self.cond:
                self.node_stats = values
                try:
                    self.memory.append((time.monotonic(), float(values["memory_rss_mb"])))
                except (KeyError, ValueError):
                    pass
                self.cond.notify_all()

    def node_count(self, key: str) -> int:
        """An integer counter of the node's last /diagnostics; -1 when absent."""
        try:
            return int(self.node_stats.get(key, ""))
        except ValueError:
            return -1

    def on_overlay(self, raw: bytes) -> None:
        if self.recorder is not None:
            from sensor_msgs.msg import Image

            msg = deserialize_message(raw, Image)
            self.recorder.write("overlay", stamp_ns(msg.header), raw)


class OutputRecorder:
    """Writes the node's outputs to a new rosbag2 (MCAP) with rosbags; our message types are
    registered from the .msg files."""

    def __init__(self, path: str | Path, instances_topic: str, overlay_topic: str):
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        self.typestore = get_typestore(Stores.ROS2_KILTED)
        types = {}
        for name in ("TrackedInstance", "TrackedInstanceArray"):
            text = (_msg_dir() / f"{name}.msg").read_text()
            types.update(get_types_from_msg(text, f"{names.PACKAGE}/msg/{name}"))
        self.typestore.register(types)
        self.path = Path(path)
        try:
            self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
        except WriterError as e:
            raise BagError(f"--record: cannot create {self.path}: {e}") from None
        self.conns = {
            "instances": self.writer.add_connection(
                instances_topic, f"{names.PACKAGE}/msg/TrackedInstanceArray",
                typestore=self.typestore),
            "overlay": self.writer.add_connection(overlay_topic, "sensor_msgs/msg/Image",
                                                  typestore=self.typestore),
        }
        self.counts = {k: 0 for k in self.conns}
        self.lock = threading.Lock()

    def write(self, kind: str, stamp: int, raw: bytes) -> None:
        """Log time = the source image's stamp, so the outputs line up with the input bag."""
        with self.lock:
            if self.writer is not None:
                self.writer.write(self.conns[kind], stamp, raw)
                self.counts[kind] += 1

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None


def _msg_dir() -> Path:
    here = Path(__file__).resolve().parents[1] / "msg"
    if (here / "TrackedInstanceArray.msg").is_file():
        return here
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(names.PACKAGE)) / "msg"
