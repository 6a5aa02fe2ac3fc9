"""A KITTI raw drive (the ``*_sync`` downloads) as a :class:`~.bag_writer.FrameSource`.

The layout read (KITTI's own)::

    <raw>/<date>/calib_cam_to_cam.txt        P_rect_02, R_rect_00, S_rect_02 (w h), ...
    <raw>/<date>/calib_velo_to_cam.txt       R, T (LiDAR -> camera 0)
    <raw>/<date>/<date>_drive_<NNNN>_sync/image_02/data/<10 digits>.png    rectified colour
    <raw>/<date>/<date>_drive_<NNNN>_sync/image_02/timestamps.txt          one time per frame
    <raw>/<date>/<date>_drive_<NNNN>_sync/velodyne_points/data/<10 digits>.bin

and, optionally, the KITTI depth-completion ground truth of the drive (``data_depth_annotated``),
either inside the drive folder or under a separate root (``train/`` or ``val/``)::

    <drive>/proj_depth/groundtruth/image_02/<10 digits>.png
    <depth root>/{train,val,.}/<date>_drive_<NNNN>_sync/proj_depth/groundtruth/image_02/...

Depth units differ by layout, and each is read as its own: this ground truth is uint16
``value / 256`` metres (0 = none) and is written as 32FC1 metres (NaN = none; 16UC1 mm would cut
it at 65.5 m), whereas the tracking layout's ``depth_02`` (``stemseg synth``) is uint16
millimetres, written as 16UC1. It covers every frame but the first and last 5; those frames get
no depth message.

Stamps are the drive's own ``image_02/timestamps.txt`` (absolute UTC times). A scan is stamped
with its image's stamp: the ``_sync`` data pairs them one to one (the scanner triggers the
cameras), so the node pairs them at any ``sync_tolerance_sec``.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.bag_writer import FrameSource
from stemseg_core.data.kitti_calib import (
    RAW_CAM_TO_CAM,
    projection_of,
    read_kitti_calib,
)
from stemseg_core.errors import DataFormatError

#: ``2011_09_26_drive_0005`` with or without ``_sync``.
DRIVE_NAME = re.compile(r"(\d{4}_\d\d_\d\d)_drive_(\d{4})(_sync)?")
CAMERA = "image_02"
DEPTH_GT = Path("proj_depth") / "groundtruth" / CAMERA
#: Scale of the depth-completion ground truth PNGs: metres = value / DEPTH_GT_SCALE.
DEPTH_GT_SCALE = 256.0


def find_drive(drive: str | Path, raw_root: str | Path | None = None) -> Path:
    """The drive folder: ``drive`` itself when it is a folder, else the name
    ``<date>_drive_<NNNN>[_sync]`` under ``raw_root/<date>/``."""
    p = Path(drive)
    if p.is_dir():
        return p
    m = DRIVE_NAME.fullmatch(p.name)
    if raw_root is None or m is None:
        raise FileNotFoundError(f"drive {str(drive)!r} is not a folder; give the drive folder "
                                f"(<raw>/<date>/<date>_drive_<NNNN>_sync) or --raw <raw> with a "
                                f"name such as 2011_09_26_drive_0005")
    d = Path(raw_root) / m.group(1) / f"{m.group(1)}_drive_{m.group(2)}_sync"
    if not d.is_dir():
        raise FileNotFoundError(f"drive folder {d} does not exist (KITTI raw layout "
                                f"<raw>/<date>/<date>_drive_<NNNN>_sync)")
    return d


def image_size_of(calib: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """(height, width) of rectified camera 2 (``S_rect_02`` is ``width height``), or None."""
    s = calib.get("S_rect_02")
    return None if s is None or s.size != 2 else (int(round(s[1])), int(round(s[0])))


def find_depth_dir(drive_dir: Path, depth_root: str | Path | None = None) -> Path | None:
    """The drive's depth-completion ground truth folder (see the module doc), or None."""
    places = [drive_dir / DEPTH_GT]
    if depth_root is not None:
        places += [Path(depth_root) / s / drive_dir.name / DEPTH_GT for s in ("train", "val", ".")]
    return next((p for p in places if p.is_dir()), None)


def read_depth_gt(path: Path) -> tuple[np.ndarray, str]:
    """A depth-completion ground truth PNG (uint16, value / 256 = metres, 0 = none) as
    (H, W) float32 metres with NaN = none, encoding 32FC1."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise DataFormatError(f"need a one-channel uint16 PNG (value / 256 = metres), got "
                              f"{None if raw is None else (raw.dtype, raw.shape)}", path)
    m = raw.astype(np.float32) / np.float32(DEPTH_GT_SCALE)
    m[raw == 0] = np.nan
    return m, "32FC1"


def time_ns(line: str) -> int:
    """Exact integer ns since the epoch of a raw timestamp ``YYYY-mm-dd HH:MM:SS.fffffffff``
    (UTC); ValueError naming the expected form."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,9}))?", line.strip())
    if not m:
        raise ValueError(f"cannot parse timestamp {line.strip()[:40]!r} (expected "
                         f"'YYYY-mm-dd HH:MM:SS.fffffffff' as KITTI raw writes it)")
    whole = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    return int(whole.timestamp()) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def read_stamps_ns(ts_file: Path, numbers: list[int]) -> list[int]:
    """Stamps (ns) of frames ``numbers``: line ``k`` of the timestamps file is frame ``k``."""
    lines = [(n, ln) for n, ln in enumerate(ts_file.read_text().splitlines(), 1) if ln.strip()]
    if len(lines) <= max(numbers):
        raise DataFormatError(f"has {len(lines)} times but frame {max(numbers)} exists (one "
                              f"line per frame expected)", ts_file)
    out = []
    for k in numbers:
        n, ln = lines[k]
        try:
            out.append(time_ns(ln))
        except ValueError as e:
            raise DataFormatError(str(e), ts_file, n) from None
    return out


def raw_frame_source(drive: str | Path, raw_root: str | Path | None = None,
                     depth_root: str | Path | None = None) -> FrameSource:
    """Frames, stamps, camera 2's projection, depth and LiDAR files of one raw drive."""
    drive_dir = find_drive(drive, raw_root)
    img_dir = drive_dir / CAMERA / "data"
    images = sorted(img_dir.glob("*.png")) if img_dir.is_dir() else []
    if not images:
        raise FileNotFoundError(f"no frames {img_dir}/<10 digits>.png (KITTI raw layout: the "
                                f"drive's {CAMERA}/data/)")
    bad = next((p for p in images if not p.stem.isdigit()), None)
    if bad is not None:
        raise DataFormatError("frame file names must be numbers (0000000000.png, ...)", bad)
    frames = [(int(p.stem), p) for p in images]
    calib_file = drive_dir.parent / RAW_CAM_TO_CAM
    calib = read_kitti_calib(calib_file)
    P = projection_of(calib)
    if P is None:
        raise DataFormatError("has no P_rect_02 (3x4): not a KITTI raw calibration", calib_file)
    size = image_size_of(calib)
    first = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
    if first is None:
        raise DataFormatError("cannot read this image", images[0])
    h, w = first.shape[:2]
    if size is not None and size != (h, w):
        raise DataFormatError(f"S_rect_02 says {size[1]}x{size[0]} but {images[0].name} is "
                              f"{w}x{h}: the images must be the rectified (_sync) ones",
                              calib_file)
    ts_file = drive_dir / CAMERA / "timestamps.txt"
    if not ts_file.is_file():
        raise FileNotFoundError(f"{ts_file} missing (one time per frame in KITTI raw)")
    stamps = read_stamps_ns(ts_file, [k for k, _ in frames])
    velo_dir = drive_dir / "velodyne_points" / "data"
    depth_dir = find_depth_dir(drive_dir, depth_root)

    def beside(folder: Path | None, p: Path, suffix: str) -> Path | None:
        f = None if folder is None else folder / (p.stem + suffix)
        return f if f is not None and f.is_file() else None

    depth = [beside(depth_dir, p, ".png") for _, p in frames]
    velo = [beside(velo_dir, p, ".bin") for _, p in frames]
    return FrameSource(drive_dir, frames, stamps, P, calib_file, ts_file,
                       depth if any(depth) else None, velo if any(velo) else None,
                       read_depth=read_depth_gt)


__all__ = ["CAMERA", "DEPTH_GT", "DEPTH_GT_SCALE", "DRIVE_NAME", "find_depth_dir", "find_drive",
           "image_size_of", "raw_frame_source", "read_depth_gt", "read_stamps_ns", "time_ns"]
