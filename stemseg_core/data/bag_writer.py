"""KITTI image sequence -> rosbag2 (MCAP or sqlite3), without ROS (pure Python ``rosbags``).

A KITTI MOTS / KITTI tracking sequence (``<root>/<split>/image_02/<seq>/*.png``) becomes a bag
with ``sensor_msgs/Image`` (or ``CompressedImage``, PNG or JPEG) and ``sensor_msgs/CameraInfo``
(K and P of the calib file when there is one), plus, when the data set has them, the frame's
depth image (``<camera ns>/depth/image_raw``, 16UC1 millimetres, the camera's frame_id:
registered) and LiDAR scan (``/velodyne_points``, PointCloud2 x y z intensity float32, frame
``velodyne``) at the frame's stamp. Frame ``k`` (the number in its file name) gets the stamp
``start_ns + k / rate`` exactly, or the times of a timestamps file next to the sequence. The bag
directory also holds ``frames.csv`` (frame number, stamp, file) so results can be matched back to
KITTI frame numbers by stamp. Pixels are packed by the one codec
(:mod:`stemseg_core.data.image_codec`).
"""
from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.bag_format import (
    CAMERA_INFO_MSGTYPE,
    COMPRESSED_MSGTYPE,
    DEFAULT_FRAME_ID,
    DEFAULT_LIDAR_FRAME_ID,
    DEFAULT_POINTS_TOPIC,
    DEFAULT_TOPIC,
    FRAMES_CSV,
    IMAGE_MSGTYPE,
    POINTCLOUD_MSGTYPE,
    BagError,
)
from stemseg_core.data.image_codec import (
    ENCODINGS,
    ImageDecodeError,
    compress_array,
    compressed_format_string,
    encode_image,
    pack_image,
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
from stemseg_core.data.kitti_layout import frame_files, frame_number, sensor_file, sequence_dir


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
    return encode_compressed_image(img, None)


def encode_compressed_image(img: np.ndarray, jpeg_quality: int | None) -> tuple[str, bytes]:
    """(CompressedImage.format, bytes): lossless PNG, or JPEG of ``jpeg_quality`` (0-100, 8-bit
    images only) as a camera driver's image_transport sends it."""
    fmt = "png" if jpeg_quality is None else "jpeg"
    try:
        return (compressed_format_string(fmt, encoding_of(img)),
                compress_array(img, fmt, quality=95 if jpeg_quality is None else jpeg_quality))
    except ImageDecodeError as e:
        raise BagError(str(e)) from None


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
    depth_topic: str | None = None  # None: the data set has no depth images
    depth_frames: int = 0
    points_topic: str | None = None  # None: the data set has no LiDAR scans
    points_frames: int = 0
    depth_encoding: str | None = None  # "16UC1" (mm) or "32FC1" (metres)


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


def depth_topic_for(topic: str) -> str:
    """``/camera/image_raw`` -> ``/camera/depth/image_raw`` (the depth image beside it)."""
    return f"{topic.rsplit('/', 1)[0]}/depth/image_raw"


def read_velodyne(path: Path) -> np.ndarray:
    """(N, 4) float32 x y z reflectance of a KITTI ``.bin`` scan."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise BagError(f"{path}: {raw.size} floats, not a multiple of 4 (x y z reflectance)")
    return raw.reshape(-1, 4)


def _pointcloud_msg(T, header, pts: np.ndarray):
    """sensor_msgs/PointCloud2 of (N, 4) float32 x y z intensity, unorganised."""
    field = T["sensor_msgs/msg/PointField"]
    fields = [field(name=n, offset=4 * i, datatype=field.FLOAT32, count=1)
              for i, n in enumerate(("x", "y", "z", "intensity"))]
    data = np.ascontiguousarray(pts, dtype="<f4").view(np.uint8).reshape(-1)
    return T[POINTCLOUD_MSGTYPE](header=header, height=1, width=len(pts), fields=fields,
                                 is_bigendian=False, point_step=16, row_step=16 * len(pts),
                                 data=data, is_dense=True)


def read_depth_mm(path: Path) -> tuple[np.ndarray, str]:
    """A depth PNG of uint16 millimetres (``stemseg synth --depth``, ``depth_02``) as 16UC1."""
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16:
        raise BagError(f"{path}: need a uint16 (millimetres) PNG, got "
                       f"{None if depth is None else depth.dtype}")
    return depth, "16UC1"


@dataclass
class FrameSource:
    """One camera's frames and the sensor files beside them, in any KITTI layout."""

    seq_dir: Path  # the sequence / drive folder (names the source and frames.csv's seq)
    frames: list[tuple[int, Path]]  # (frame number, image file), in order
    stamps_ns: list[int]
    projection: np.ndarray | None  # (3, 4) P of the camera; None: a plausible pinhole
    calibration_file: Path | None = None
    timestamps_file: Path | None = None
    depth_files: list[Path | None] | None = None  # per frame; None: no depth at all
    velo_files: list[Path | None] | None = None  # per frame; None: no LiDAR at all
    #: depth file -> (array, "16UC1" uint16 mm | "32FC1" float metres)
    read_depth: Callable[[Path], tuple[np.ndarray, str]] = read_depth_mm


def write_kitti_bag(kitti: str | Path, seq: str | int, out: str | Path, *,
                    rate: float = DEFAULT_RATE, start_ns: int = DEFAULT_START_NS,
                    **options) -> KittiBagSummary:
    """Write one KITTI MOTS / tracking sequence into a new rosbag2 directory ``out`` (see the
    module doc); ``options``: those of :func:`write_frames_bag`."""
    seq_dir = sequence_dir(kitti, seq)
    frames = [(frame_number(p, i), p) for i, p in enumerate(frame_files(seq_dir))]
    ts_file = find_timestamps_file(seq_dir)
    stamps = frame_stamps([k for k, _ in frames], rate=rate, start_ns=start_ns,
                          timestamps_file=ts_file)
    calib = find_calibration(seq_dir)
    P = read_projection(calib) if calib else None
    source = FrameSource(seq_dir, frames, stamps, P, calib if P is not None else None, ts_file,
                         [sensor_file(seq_dir, "depth", p) for _, p in frames],
                         [sensor_file(seq_dir, "velodyne", p) for _, p in frames])
    return write_frames_bag(source, out, **options)


def write_frames_bag(src: FrameSource, out: str | Path, *,
                     storage: str = "mcap", compressed: bool = False,
                     topic: str = DEFAULT_TOPIC, frame_id: str = DEFAULT_FRAME_ID,
                     overwrite: bool = False, progress: bool = False,
                     points_topic: str = DEFAULT_POINTS_TOPIC,
                     lidar_frame_id: str = DEFAULT_LIDAR_FRAME_ID,
                     jpeg_quality: int | None = None,
                     image_encoding: str | None = None) -> KittiBagSummary:
    """Write a :class:`FrameSource` into a new rosbag2 directory ``out`` (see the module doc);
    ``jpeg_quality`` (0-100): CompressedImage as JPEG of that quality (implies compressed);
    ``image_encoding``: an 8-bit RGB sequence sent as ``sensor_msgs/Image`` in that encoding
    (e.g. ``yuv422``, UYVY as V4L2 cameras send it; any of image_codec.ENCODINGS) instead of
    its own."""
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    if storage not in ("mcap", "sqlite3"):
        raise BagError(f"--format must be mcap or sqlite3, got {storage!r}")
    if jpeg_quality is not None:
        if not 0 <= int(jpeg_quality) <= 100:
            raise BagError(f"--jpeg-quality must be in 0..100, got {jpeg_quality}")
        compressed = True
    if image_encoding is not None and image_encoding not in ENCODINGS:
        raise BagError(f"--encoding {image_encoding!r} is not a sensor_msgs/Image encoding this "
                       f"project writes; allowed: {', '.join(ENCODINGS)}")
    if image_encoding is not None and compressed:
        raise BagError("--encoding sets a raw sensor_msgs/Image encoding; it does not go with "
                       "--compressed or --jpeg-quality (a CompressedImage)")
    seq_dir, frames, stamps = src.seq_dir, src.frames, src.stamps_ns
    numbers = [k for k, _ in frames]
    ts_file, calib, P = src.timestamps_file, src.calibration_file, src.projection
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
    if P is None:
        P = plausible_projection(h, w)

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    msgtype = COMPRESSED_MSGTYPE if compressed else IMAGE_MSGTYPE
    info_topic = info_topic_for(topic)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    encoding = encoding_of(first)
    if jpeg_quality is not None and first.dtype != np.uint8:
        raise BagError(f"{frames[0][1]} is {encoding}: JPEG holds 8-bit images only; use "
                       f"--compressed (lossless PNG) for it")
    if image_encoding is not None and encoding != "rgb8":
        raise BagError(f"{frames[0][1]} is {encoding}: --encoding converts 8-bit RGB images "
                       f"only; leave it out to keep {encoding}")
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
        depth_files = src.depth_files or [None] * len(frames)
        velo_files = src.velo_files or [None] * len(frames)
        depth_topic = depth_topic_for(topic) if any(depth_files) else None
        pts_topic = points_topic if any(velo_files) else None
        depth_conn = pts_conn = None
        if depth_topic:
            depth_conn = writer.add_connection(depth_topic, IMAGE_MSGTYPE, typestore=ts,
                                               offered_qos_profiles=qos)
        if pts_topic:
            pts_conn = writer.add_connection(pts_topic, POINTCLOUD_MSGTYPE, typestore=ts,
                                             offered_qos_profiles=qos)
        it = tqdm(list(zip(frames, stamps, depth_files, velo_files)), desc=f"bag {seq_dir.name}",
                  unit="frame", disable=not progress or None, leave=False)
        for (k, path), stamp_ns, depth_file, velo_file in it:
            img = first if k == frames[0][0] else read_png(path)
            if img.shape[:2] != (h, w) or encoding_of(img) != encoding:
                raise BagError(f"{path} is {encoding_of(img)} {img.shape[1]}x{img.shape[0]} "
                               f"but the sequence starts with {encoding} {w}x{h}")
            header = T["std_msgs/msg/Header"](stamp=_stamp(ts, stamp_ns), frame_id=frame_id)
            if compressed:
                fmt, data = encode_compressed_image(img, jpeg_quality)
                msg = T[COMPRESSED_MSGTYPE](header=header, format=fmt,
                                            data=np.frombuffer(data, np.uint8))
            else:
                enc, step, data = (encode_image(img, image_encoding) if image_encoding
                                   else (encoding, *pack_image(img, encoding)))
                msg = T[IMAGE_MSGTYPE](
                    header=header, height=h, width=w, encoding=enc, is_bigendian=0,
                    step=step, data=np.frombuffer(data, np.uint8))
            writer.write(img_conn, stamp_ns, ts.serialize_cdr(msg, msgtype))
            info = T[CAMERA_INFO_MSGTYPE](
                header=header, height=h, width=w, distortion_model="plumb_bob",
                d=np.zeros(5), k=P[:, :3].reshape(-1).copy(),
                r=np.eye(3).reshape(-1), p=P.reshape(-1).copy(), binning_x=0, binning_y=0,
                roi=T["sensor_msgs/msg/RegionOfInterest"](
                    x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            writer.write(info_conn, stamp_ns, ts.serialize_cdr(info, CAMERA_INFO_MSGTYPE))
            if depth_file is not None:
                depth, depth_enc = src.read_depth(depth_file)
                if depth.shape != (h, w):
                    raise BagError(f"{depth_file}: depth is {depth.shape[1]}x{depth.shape[0]}, "
                                   f"the images {w}x{h}; it must be registered to them")
                step, data = pack_image(depth, depth_enc)
                msg = T[IMAGE_MSGTYPE](header=header, height=h, width=w, encoding=depth_enc,
                                       is_bigendian=0, step=step,
                                       data=np.frombuffer(data, np.uint8))
                writer.write(depth_conn, stamp_ns, ts.serialize_cdr(msg, IMAGE_MSGTYPE))
            if velo_file is not None:
                vh = T["std_msgs/msg/Header"](stamp=_stamp(ts, stamp_ns), frame_id=lidar_frame_id)
                msg = _pointcloud_msg(T, vh, read_velodyne(velo_file))
                writer.write(pts_conn, stamp_ns, ts.serialize_cdr(msg, POINTCLOUD_MSGTYPE))
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
    return KittiBagSummary(out, topic, info_topic, numbers, stamps, msgtype,
                           image_encoding or encoding, (h, w),
                           ts_file, calib, depth_topic, sum(f is not None for f in depth_files),
                           pts_topic, sum(f is not None for f in velo_files),
                           depth_enc if depth_topic else None)
