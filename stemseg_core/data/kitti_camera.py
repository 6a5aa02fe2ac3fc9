"""What a KITTI sequence says about its camera: the projection (calibration) and frame times.

Calibration: KITTI tracking ``<split>/calib/<seq>.txt`` (``P2:``, ``Tr_velo_cam``) or raw
``calib_cam_to_cam.txt`` (``P_rect_02:``); :func:`read_calib` reads every matrix,
:func:`format_calib` writes the tracking format; without one, :func:`plausible_projection` gives a
pinhole with KITTI's field of view. Times: a per-frame timestamps file when the data set has one
(:func:`find_timestamps_file`), else a fixed rate (:func:`frame_stamps`).
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from stemseg_core.errors import DataFormatError

DEFAULT_RATE = 10.0
#: Fixed start of every bag written here (2011-09-26 00:00:00 UTC, the first KITTI recording
#: day), so that converting the same sequence twice gives identical bags.
DEFAULT_START_NS = 1_316_995_200 * 1_000_000_000
#: Horizontal field of view used for a plausible pinhole when no calibration file exists
#: (KITTI's colour cameras: f = 721.5 px at 1242 px width, ~81 deg).
DEFAULT_HFOV_DEG = 81.4


def _split_dir(seq_dir: Path) -> Path:
    """``<kitti>/training`` for ``<kitti>/training/image_02/<seq>``."""
    return seq_dir.parent.parent


# --------------------------------------------------------------------------------------------
# Calibration


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
    for n, line in enumerate(Path(calib_file).read_text().splitlines(), start=1):
        key, _, rest = line.partition(":")
        if key.strip() in ("P2", "P_rect_02"):
            try:
                vals = [float(v) for v in rest.split()]
            except ValueError:
                raise DataFormatError(f"{key.strip()} must be 12 numbers: {line[:80]!r}",
                                      calib_file, n) from None
            if len(vals) == 12:
                return np.asarray(vals, dtype=np.float64).reshape(3, 4)
    return None


def read_calib(calib_file: Path) -> dict[str, np.ndarray]:
    """All matrices of a KITTI calib file: ``{"P2": (3, 4), "R_rect": (3, 3),
    "Tr_velo_cam": (3, 4), ...}``; keys as written, with or without a colon (tracking writes
    ``R_rect`` and ``Tr_*`` without). Raw files' non-numeric lines (``calib_time``) are skipped."""
    out: dict[str, np.ndarray] = {}
    for n, line in enumerate(Path(calib_file).read_text().splitlines(), start=1):
        key, _, rest = line.partition(":") if ":" in line.split(" ", 1)[0] else \
            line.partition(" ")
        key = key.strip()
        if not key or key == "calib_time":
            continue
        try:
            vals = np.asarray([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            raise DataFormatError(f"{key} must be numbers: {line[:80]!r}", calib_file,
                                  n) from None
        shape = {12: (3, 4), 9: (3, 3)}.get(len(vals))
        out[key] = vals.reshape(shape) if shape else vals
    return out


def velo_to_cam_of(calib: dict[str, np.ndarray]) -> np.ndarray | None:
    """(3, 4) LiDAR -> camera 0 transform of a :func:`read_calib` dict (tracking
    ``Tr_velo_cam``, raw ``Tr_velo_to_cam`` / ``R`` + ``T``), or None."""
    for key in ("Tr_velo_cam", "Tr_velo_to_cam"):
        if calib.get(key) is not None and calib[key].shape == (3, 4):
            return calib[key]
    if "R" in calib and "T" in calib and calib["R"].size == 9 and calib["T"].size == 3:
        return np.concatenate([calib["R"].reshape(3, 3), calib["T"].reshape(3, 1)], 1)
    return None


def format_calib(P2: np.ndarray, velo_to_cam: np.ndarray | None = None) -> str:
    """A KITTI tracking calib file's text for a single rectified camera: P0..P3 all = ``P2``
    (only camera 2 exists), ``R_rect`` = identity, ``Tr_velo_cam`` when given, ``Tr_imu_velo``
    = identity (no IMU)."""
    def row(key: str, m: np.ndarray, colon: bool) -> str:
        return f"{key}{':' if colon else ''} " + " ".join(f"{v:.12e}" for v in
                                                          np.ravel(m)) + "\n"

    P2 = np.asarray(P2, dtype=np.float64)
    if P2.shape != (3, 4):
        raise ValueError(f"P2 must be 3x4, got shape {P2.shape}")
    text = "".join(row(f"P{i}", P2, True) for i in range(4)) + row("R_rect", np.eye(3), False)
    if velo_to_cam is not None:
        text += row("Tr_velo_cam", np.asarray(velo_to_cam, dtype=np.float64), False)
    return text + row("Tr_imu_velo", np.eye(3, 4), False)


def plausible_projection(height: int, width: int) -> np.ndarray:
    """A pinhole 3x4 P for an image size, with KITTI's horizontal field of view."""
    f = 0.5 * width / math.tan(math.radians(DEFAULT_HFOV_DEG) / 2)
    return np.array([[f, 0, (width - 1) / 2, 0], [0, f, (height - 1) / 2, 0], [0, 0, 1, 0]],
                    dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Frame times


def parse_time(line: str) -> float:
    """Seconds from a timestamps line: float seconds, or 'YYYY-mm-dd HH:MM:SS.fffffffff'."""
    line = line.strip()
    try:
        return float(line)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\.(\d+))?", line)
    if not m:
        raise ValueError(f"cannot parse timestamp {line!r} (expected seconds or "
                         f"'YYYY-mm-dd HH:MM:SS.fff')")
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
    numbered = [(n, ln) for n, ln in enumerate(Path(timestamps_file).read_text().splitlines(),
                                               start=1) if ln.strip()]
    need = max(frame_numbers) + 1
    if len(numbered) < need:
        raise DataFormatError(f"has {len(numbered)} times but frame {need - 1} exists (one "
                              f"line per frame expected)", timestamps_file)
    times = []
    for n, ln in numbered:
        try:
            times.append(parse_time(ln))
        except ValueError as e:
            raise DataFormatError(str(e), timestamps_file, n) from None
    # integer ns offsets from the first line, computed per line to avoid float drift
    return [start_ns + round((times[k] - times[0]) * 1e9) for k in frame_numbers]


__all__ = ["DEFAULT_HFOV_DEG", "DEFAULT_RATE", "DEFAULT_START_NS", "find_calibration",
           "find_timestamps_file", "format_calib", "frame_stamps", "parse_time",
           "plausible_projection", "read_calib", "read_projection", "velo_to_cam_of"]
