"""rosbag2 input/output for camera streams, without ROS (pure Python `rosbags`).

Writing: a KITTI MOTS / KITTI tracking image sequence (``<root>/<split>/image_02/<seq>/*.png``)
becomes a rosbag2 (MCAP or sqlite3) with ``sensor_msgs/Image`` (or ``CompressedImage``, PNG) and
``sensor_msgs/CameraInfo``. Frame ``k`` (the number in its file name) gets the stamp
``start_ns + k / rate`` exactly, or the times of a timestamps file next to the sequence. The bag
directory also holds ``frames.csv`` (frame number, stamp, file) so results can be matched back to
KITTI frame numbers by stamp.

Reading: any rosbag2 (directory, or a bare ``.mcap`` / ``.db3`` file) with an Image or
CompressedImage topic; the topic is found automatically when there is exactly one. Problems
(no image topic, unknown topic, several image topics, truncated or corrupt file) raise
:class:`BagError` subclasses whose message says what to do, never a bare library traceback.
"""
from __future__ import annotations

import csv
import math
import re
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.image_codec import (
    ImageDecodeError,
    compress_array,
    compressed_format_string,
    decode_compressed,
    decode_image,
    pack_image,
)

IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
COMPRESSED_MSGTYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_MSGTYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_MSGTYPES = (IMAGE_MSGTYPE, COMPRESSED_MSGTYPE)

DEFAULT_TOPIC = "/camera/image_raw"
DEFAULT_FRAME_ID = "camera"
DEFAULT_RATE = 10.0
#: Fixed start of every bag written here (2011-09-26 00:00:00 UTC, the first KITTI recording
#: day), so that converting the same sequence twice gives identical bags.
DEFAULT_START_NS = 1_316_995_200 * 1_000_000_000
FRAMES_CSV = "frames.csv"

#: Horizontal field of view used for a plausible pinhole when no calibration file exists
#: (KITTI's colour cameras: f = 721.5 px at 1242 px width, ~81 deg).
_DEFAULT_HFOV_DEG = 81.4


class BagError(Exception):
    """A bag cannot be read or written as asked; the message says why and what to do."""


class NoImageTopicError(BagError):
    """The bag has no sensor_msgs/Image or sensor_msgs/CompressedImage topic."""


class UnknownTopicError(BagError):
    """The requested topic is not in the bag (or is not an image topic)."""


class AmbiguousTopicError(BagError):
    """Several image topics and no --topic to choose one."""


class CorruptBagError(BagError):
    """The bag file is truncated, corrupt, or not a rosbag2 at all."""


# --------------------------------------------------------------------------------------------
# KITTI layout
# --------------------------------------------------------------------------------------------

def seq_name(seq: str | int) -> str:
    """KITTI sequence name: 2, "2", "0002" -> "0002"."""
    s = str(seq).strip()
    return f"{int(s):04d}" if s.isdigit() else s


def kitti_sequence_dir(kitti: str | Path, seq: str | int) -> Path:
    """The image folder of a sequence: ``<kitti>/{training,testing}/image_02/<seq>``.

    ``kitti`` may also be the ``training`` folder or the ``image_02`` folder itself.
    """
    root = Path(kitti)
    name = seq_name(seq)
    candidates = [root / split / "image_02" / name for split in ("training", "testing")]
    candidates += [root / "image_02" / name, root / name]
    for c in candidates:
        if c.is_dir():
            return c
    if not root.exists():
        raise FileNotFoundError(f"KITTI directory {root} does not exist")
    tried = ", ".join(str(c) for c in candidates[:3])
    raise FileNotFoundError(f"sequence {name} not found under {root} (looked for {tried}); "
                            f"expected the KITTI MOTS layout training/image_02/<seq>/*.png")


def kitti_frames(seq_dir: Path) -> list[tuple[int, Path]]:
    """(frame number, path) of every image of a sequence folder, sorted by frame number."""
    frames = []
    for p in seq_dir.iterdir():
        if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.stem.isdigit():
            frames.append((int(p.stem), p))
    if not frames:
        raise FileNotFoundError(f"no numbered images (000000.png, ...) in {seq_dir}")
    return sorted(frames)


def _split_dir(seq_dir: Path) -> Path:
    """``<kitti>/training`` for ``<kitti>/training/image_02/<seq>``."""
    return seq_dir.parent.parent


def _parse_time(line: str) -> float:
    """Seconds from a timestamps line: float seconds, or 'YYYY-mm-dd HH:MM:SS.fffffffff'."""
    line = line.strip()
    try:
        return float(line)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\.(\d+))?", line)
    if not m:
        raise ValueError(f"cannot parse timestamp {line!r}")
    whole = datetime.strptime(m.group(1).replace("T", " "), "%Y-%m-%d %H:%M:%S")
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return whole.replace(tzinfo=timezone.utc).timestamp() + frac


def find_timestamps_file(seq_dir: Path) -> Path | None:
    """A per-frame timestamps file of the sequence, if the data set has one.

    Looked for: ``image_02/<seq>/{times,timestamps}.txt`` (odometry / raw style),
    ``<split>/{times,timestamps}/<seq>.txt`` and ``<split>/oxts/<seq>/timestamps.txt``.
    (KITTI tracking's ``oxts/<seq>.txt`` has no times: those sequences are 10 Hz.)
    """
    split, name = _split_dir(seq_dir), seq_dir.name
    for c in (seq_dir / "times.txt", seq_dir / "timestamps.txt",
              split / "times" / f"{name}.txt", split / "timestamps" / f"{name}.txt",
              split / "oxts" / name / "timestamps.txt"):
        if c.is_file():
            return c
    return None


def frame_stamps(frame_numbers: list[int], *, rate: float = DEFAULT_RATE,
                 start_ns: int = DEFAULT_START_NS,
                 timestamps_file: Path | None = None) -> list[int]:
    """Stamps (ns) of the given frame numbers.

    Without a timestamps file: ``start_ns + k * 1e9 / rate`` (exact in integer ns for 10 Hz).
    With one: line ``k`` gives frame ``k``'s time; stamps are ``start_ns`` + time since line 0.
    """
    if timestamps_file is None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        return [start_ns + round(k * 1_000_000_000 / rate) for k in frame_numbers]
    lines = [ln for ln in Path(timestamps_file).read_text().splitlines() if ln.strip()]
    need = max(frame_numbers) + 1
    if len(lines) < need:
        raise ValueError(f"{timestamps_file} has {len(lines)} times but frame {need - 1} exists")
    times = [_parse_time(ln) for ln in lines]
    # integer ns offsets from the first line, computed per line to avoid float drift
    return [start_ns + round((times[k] - times[0]) * 1e9) for k in frame_numbers]


def find_calibration(seq_dir: Path) -> Path | None:
    """KITTI tracking ``<split>/calib/<seq>.txt`` or raw ``calib_cam_to_cam.txt``, if present."""
    split, name = _split_dir(seq_dir), seq_dir.name
    for c in (split / "calib" / f"{name}.txt", split / "calib_cam_to_cam.txt",
              split.parent / "calib_cam_to_cam.txt", seq_dir / "calib.txt"):
        if c.is_file():
            return c
    return None


def read_projection(calib_file: Path) -> np.ndarray | None:
    """3x4 projection of camera 2 (``P2:`` or ``P_rect_02:``) from a KITTI calib file."""
    for line in Path(calib_file).read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.strip() in ("P2", "P_rect_02"):
            vals = [float(v) for v in rest.split()]
            if len(vals) == 12:
                return np.asarray(vals, dtype=np.float64).reshape(3, 4)
    return None


def plausible_projection(height: int, width: int) -> np.ndarray:
    """A pinhole 3x4 P for an image size, with KITTI's horizontal field of view."""
    f = 0.5 * width / math.tan(math.radians(_DEFAULT_HFOV_DEG) / 2)
    return np.array([[f, 0, (width - 1) / 2, 0], [0, f, (height - 1) / 2, 0], [0, 0, 1, 0]],
                    dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Images <-> message fields
# --------------------------------------------------------------------------------------------

def _rgb_order(img: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) channel order -> RGB(A); grey images unchanged."""
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def read_png(path: Path) -> np.ndarray:
    """An image file as stored: RGB(A) channel order, uint8 or uint16, 2-D when grey."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BagError(f"cannot read image {path}")
    return _rgb_order(img)


def encoding_of(img: np.ndarray) -> str:
    """ROS encoding of an RGB(A)/grey uint8/uint16 array."""
    bits = {np.dtype(np.uint8): "8", np.dtype(np.uint16): "16"}.get(img.dtype)
    if bits is None:
        raise BagError(f"unsupported image dtype {img.dtype} (need uint8 or uint16)")
    if img.ndim == 2:
        return "mono" + bits
    return {3: "rgb", 4: "rgba"}[img.shape[2]] + bits


def encode_png(img: np.ndarray) -> tuple[str, bytes]:
    """(CompressedImage.format, PNG bytes), lossless; format as image_transport writes it."""
    try:
        return compressed_format_string("png", encoding_of(img)), compress_array(img, "png")
    except ImageDecodeError as e:
        raise BagError(str(e)) from None


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


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

@dataclass
class KittiBagSummary:
    """What :func:`write_kitti_bag` wrote."""

    bag: Path
    topic: str
    info_topic: str
    frames: list[int]
    stamps_ns: list[int]
    msgtype: str
    encoding: str
    image_size: tuple[int, int]
    timestamps_file: Path | None = None
    calibration_file: Path | None = None


def _default_qos():
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE, zero,
               zero, QosLiveliness.AUTOMATIC, zero, False)


def _stamp(typestore, ns: int):
    Time = typestore.types["builtin_interfaces/msg/Time"]
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def info_topic_for(topic: str) -> str:
    """``/camera/image_raw`` -> ``/camera/camera_info`` (the image_transport convention)."""
    ns = topic.rsplit("/", 1)[0]
    return f"{ns}/camera_info"


def write_kitti_bag(kitti: str | Path, seq: str | int, out: str | Path, *,
                    storage: str = "mcap", compressed: bool = False,
                    topic: str = DEFAULT_TOPIC, frame_id: str = DEFAULT_FRAME_ID,
                    rate: float = DEFAULT_RATE, start_ns: int = DEFAULT_START_NS,
                    overwrite: bool = False, progress: bool = True) -> KittiBagSummary:
    """Write one KITTI sequence into a new rosbag2 directory ``out`` (see the module doc)."""
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    if storage not in ("mcap", "sqlite3"):
        raise BagError(f"--format must be mcap or sqlite3, got {storage!r}")
    seq_dir = kitti_sequence_dir(kitti, seq)
    frames = kitti_frames(seq_dir)
    numbers = [k for k, _ in frames]
    ts_file = find_timestamps_file(seq_dir)
    stamps = frame_stamps(numbers, rate=rate, start_ns=start_ns, timestamps_file=ts_file)
    if any(b <= a for a, b in zip(stamps, stamps[1:])):
        raise BagError(f"timestamps of {seq_dir} are not strictly increasing")

    out = Path(out)
    if out.exists():
        if not overwrite:
            raise BagError(f"{out} exists already; remove it or pass --overwrite")
        if not (out / "metadata.yaml").is_file():
            raise BagError(f"{out} exists and is not a rosbag2 directory; not overwriting it")
        shutil.rmtree(out)

    first = read_png(frames[0][1])
    h, w = first.shape[:2]
    calib = find_calibration(seq_dir)
    P = read_projection(calib) if calib else None
    if P is None:
        calib = None
        P = plausible_projection(h, w)

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    msgtype = COMPRESSED_MSGTYPE if compressed else IMAGE_MSGTYPE
    info_topic = info_topic_for(topic)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    encoding = encoding_of(first)
    try:
        writer = Writer(out, version=9, storage_plugin=plugin)
        writer.set_custom_data("stemseg.source", f"kitti:{seq_dir}")
        writer.set_custom_data("stemseg.frames_csv", FRAMES_CSV)
        writer.open()
    except WriterError as e:
        raise BagError(f"cannot create bag {out}: {e}") from None
    try:
        qos = [_default_qos()]
        img_conn = writer.add_connection(topic, msgtype, typestore=ts, offered_qos_profiles=qos)
        info_conn = writer.add_connection(info_topic, CAMERA_INFO_MSGTYPE, typestore=ts,
                                          offered_qos_profiles=qos)
        it = tqdm(list(zip(frames, stamps)), desc=f"bag {seq_dir.name}", unit="frame",
                  disable=not progress or None, leave=False)
        for (k, path), stamp_ns in it:
            img = first if k == frames[0][0] else read_png(path)
            if img.shape[:2] != (h, w) or encoding_of(img) != encoding:
                raise BagError(f"{path} is {encoding_of(img)} {img.shape[1]}x{img.shape[0]} "
                               f"but the sequence starts with {encoding} {w}x{h}")
            header = T["std_msgs/msg/Header"](stamp=_stamp(ts, stamp_ns), frame_id=frame_id)
            if compressed:
                fmt, data = encode_png(img)
                msg = T[COMPRESSED_MSGTYPE](header=header, format=fmt,
                                            data=np.frombuffer(data, np.uint8))
            else:
                step, data = pack_image(img, encoding)
                msg = T[IMAGE_MSGTYPE](
                    header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                    step=step, data=np.frombuffer(data, np.uint8))
            writer.write(img_conn, stamp_ns, ts.serialize_cdr(msg, msgtype))
            info = T[CAMERA_INFO_MSGTYPE](
                header=header, height=h, width=w, distortion_model="plumb_bob",
                d=np.zeros(5), k=P[:, :3].reshape(-1).copy(),
                r=np.eye(3).reshape(-1), p=P.reshape(-1).copy(), binning_x=0, binning_y=0,
                roi=T["sensor_msgs/msg/RegionOfInterest"](
                    x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            writer.write(info_conn, stamp_ns, ts.serialize_cdr(info, CAMERA_INFO_MSGTYPE))
    except BaseException:
        writer.close()
        shutil.rmtree(out, ignore_errors=True)
        raise
    writer.close()
    with open(out / FRAMES_CSV, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["frame", "stamp_ns", "file", "seq"])
        for (k, path), s in zip(frames, stamps):
            wr.writerow([k, s, path.name, seq_dir.name])
    return KittiBagSummary(out, topic, info_topic, numbers, stamps, msgtype, encoding, (h, w),
                           ts_file, calib)


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


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

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
        self.topic = select_image_topic(self.topics, self.requested_topic, self.path)

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
    images = [t for t in topics.values() if t.msgtype in IMAGE_MSGTYPES]
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
    except (NoImageTopicError, AmbiguousTopicError):
        pass
    finally:
        topics = dict(r.topics)
        r.close()
    return topics


def read_image_frames(bag: str | Path, topic: str | None = None) -> list[BagImage]:
    """All messages of the bag's image topic (see :class:`BagImageReader`), in bag order."""
    with BagImageReader(bag, topic) as r:
        return list(r)
