"""Reading the image topic of any rosbag2 (directory, or a bare ``.mcap`` / ``.db3`` file),
without ROS (pure Python ``rosbags``).

The topic is found automatically when there is exactly one Image or CompressedImage topic.
Problems (no image topic, unknown topic, several image topics, truncated or corrupt file) raise
:class:`~stemseg_core.data.bag_format.BagError` subclasses whose message says what to do, never a
bare library traceback. Images decode through the one codec
(:mod:`stemseg_core.data.image_codec`) to (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemseg_core.data.bag_format import (
    COMPRESSED_MSGTYPE,
    IMAGE_MSGTYPES,
    AmbiguousTopicError,
    BagError,
    CorruptBagError,
    EmptyBagError,
    NoImageTopicError,
    UnknownTopicError,
    is_depth_topic,
)
from stemseg_core.data.image_codec import (
    ImageDecodeError,
    decode_compressed,
    decode_image,
    unpack_image,
)


def decode_image_msg(msg: object) -> np.ndarray:
    """Image or CompressedImage message -> (H, W, 3) uint8 RGB, through the one codec
    (:mod:`stemseg_core.data.image_codec`: honours ``step`` and ``is_bigendian``)."""
    try:
        if hasattr(msg, "format"):  # CompressedImage
            return decode_compressed(msg.format, msg.data)
        return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian,
                            msg.data)
    except ImageDecodeError as e:
        raise BagError(f"cannot decode image: {e}") from None


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """A decoded image -> (H, W, 3) uint8 RGB; images from :func:`decode_image_msg` already are
    (returned unchanged). Grey / RGBA / 16-bit arrays: 16-bit keeps its top 8 bits."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    return img


@dataclass
class TopicInfo:
    name: str
    msgtype: str | None
    count: int


@dataclass
class BagImage:
    """One image message of a bag.

    index: position on the topic (0-based, in bag order); stamp_ns: the header stamp;
    log_time_ns: the bag's receive time; raw: the serialized CDR, publishable as it is.
    """

    index: int
    stamp_ns: int
    log_time_ns: int
    msgtype: str
    encoding: str
    frame_id: str
    raw: bytes = field(repr=False)
    _msg: object = field(default=None, repr=False)

    def decode(self) -> np.ndarray:
        """The image as (H, W, 3) uint8 RGB (16-bit keeps its top 8 bits)."""
        return decode_image_msg(self._msg)

    def array(self) -> np.ndarray:
        """A raw Image in its own encoding and dtype (a 16UC1 depth image: (H, W) uint16).
        BagError for a CompressedImage or an image the codec cannot unpack."""
        m = self._msg
        if hasattr(m, "format"):
            raise BagError("array() needs a sensor_msgs/Image, this is a CompressedImage")
        try:
            return unpack_image(m.encoding, m.height, m.width, m.step, m.is_bigendian, m.data)
        except ImageDecodeError as e:
            raise BagError(f"cannot unpack image: {e}") from None


_READ_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.DatabaseError, struct.error, EOFError, ValueError, KeyError, IndexError,
    AssertionError, OSError)


def _reader_errors() -> tuple[type[BaseException], ...]:
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    return (AnyReaderError, ReaderError) + _READ_ERRORS


def _corrupt(bag: Path, err: BaseException, where: str) -> CorruptBagError:
    detail = (str(err) or type(err).__name__).rstrip(".")
    return CorruptBagError(f"cannot read bag {bag} ({where}): {detail}. The file looks truncated "
                           f"or corrupt (was the recording stopped cleanly?); re-record or "
                           f"re-convert it")


class BagImageReader:
    """Reads the image topic of a rosbag2; use as a context manager.

    >>> with BagImageReader("drive.mcap") as r:
    ...     for frame in r: img = frame.decode()
    """

    def __init__(self, bag: str | Path, topic: str | None = None):
        self.path = Path(bag)
        self.requested_topic = topic
        self._reader = None
        self.topic: TopicInfo | None = None
        self.topics: dict[str, TopicInfo] = {}

    def __enter__(self) -> BagImageReader:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if not self.path.exists():
            raise FileNotFoundError(f"bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            found = sorted(p.name for p in self.path.glob("*") if p.suffix in (".mcap", ".db3"))
            hint = f"; pass the storage file instead ({found[0]})" if found else ""
            raise CorruptBagError(f"{self.path} is a directory without metadata.yaml, so not a "
                                  f"rosbag2 directory{hint}")
        try:
            reader = AnyReader([self.path],
                               default_typestore=get_typestore(Stores.ROS2_KILTED))
            reader.open()
        except FileNotFoundError as e:
            raise CorruptBagError(f"bag {self.path} is incomplete: {e}") from None
        except _reader_errors() as e:
            raise _corrupt(self.path, e, "opening") from None
        self._reader = reader
        self.topics = {name: TopicInfo(name, info.msgtype, info.msgcount)
                       for name, info in reader.topics.items()}
        try:
            self.topic = select_image_topic(self.topics, self.requested_topic, self.path)
            if self.topic.count == 0:
                raise EmptyBagError(f"bag {self.path} has no messages on {self.topic.name}: "
                                    f"the recording is empty; record or convert it again")
        except BagError:
            self.close()
            raise

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001 - closing a broken file must not mask the error
                pass
            self._reader = None

    def __len__(self) -> int:
        return self.topic.count if self.topic else 0

    @property
    def image_topics(self) -> list[TopicInfo]:
        return [t for t in self.topics.values() if t.msgtype in IMAGE_MSGTYPES]

    def __iter__(self) -> Iterator[BagImage]:
        if self._reader is None or self.topic is None:
            raise BagError("BagImageReader is not open")
        reader = self._reader
        conns = [c for c in reader.connections if c.topic == self.topic.name]
        n = 0
        errors = _reader_errors()
        try:
            for conn, log_ns, raw in reader.messages(connections=conns):
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except errors as e:
                    raise _corrupt(self.path, e, f"message {n} on {self.topic.name}") from None
                stamp = msg.header.stamp
                enc = msg.format if conn.msgtype == COMPRESSED_MSGTYPE else msg.encoding
                yield BagImage(n, stamp.sec * 1_000_000_000 + stamp.nanosec, log_ns,
                               conn.msgtype, enc, msg.header.frame_id, bytes(raw), msg)
                n += 1
        except CorruptBagError:
            raise
        except errors as e:
            raise _corrupt(self.path, e, f"after {n} of {self.topic.count} messages on "
                                         f"{self.topic.name}") from None
        if self.topic.count and n < self.topic.count:
            raise CorruptBagError(
                f"bag {self.path} is truncated: its index lists {self.topic.count} messages on "
                f"{self.topic.name} but only {n} could be read")


def select_image_topic(topics: dict[str, TopicInfo], requested: str | None,
                       bag: Path | str = "bag") -> TopicInfo:
    """The image topic to use: ``requested`` if given (must exist and be an image), else the
    only Image/CompressedImage topic. Raises the specific :class:`BagError` otherwise."""
    listing = ", ".join(f"{t.name} [{t.msgtype}]" for t in topics.values()) or "none"
    images = [t for t in topics.values()
              if t.msgtype in IMAGE_MSGTYPES and not is_depth_topic(t.name)]
    if requested is not None:
        name = requested if requested.startswith("/") else "/" + requested
        t = topics.get(name) or topics.get(requested)
        if t is None:
            raise UnknownTopicError(f"topic {requested!r} is not in {bag}; its topics are: "
                                    f"{listing}")
        if t.msgtype not in IMAGE_MSGTYPES:
            raise UnknownTopicError(f"topic {t.name} in {bag} is {t.msgtype}, not "
                                    f"sensor_msgs/Image or CompressedImage; image topics: "
                                    f"{', '.join(i.name for i in images) or 'none'}")
        return t
    if not images:
        raise NoImageTopicError(f"{bag} has no sensor_msgs/Image or sensor_msgs/CompressedImage "
                                f"topic; its topics are: {listing}")
    if len(images) > 1:
        raise AmbiguousTopicError(f"{bag} has {len(images)} image topics; choose one with "
                                  f"--topic: {', '.join(i.name for i in images)}")
    return images[0]


def list_topics(bag: str | Path) -> dict[str, TopicInfo]:
    """All topics of a bag with their types and message counts."""
    r = BagImageReader(bag)
    try:
        r.open()
    except (NoImageTopicError, AmbiguousTopicError, EmptyBagError):
        pass
    finally:
        topics = dict(r.topics)
        r.close()
    return topics


def read_image_frames(bag: str | Path, topic: str | None = None) -> list[BagImage]:
    """All messages of the bag's image topic (see :class:`BagImageReader`), in bag order."""
    with BagImageReader(bag, topic) as r:
        return list(r)
