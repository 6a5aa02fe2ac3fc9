"""KITTI calibration composed for the rectified colour camera 2, as the node and 3-D tools use it.

KITTI projects a LiDAR point ``x`` (homogeneous, LiDAR frame) into the image of camera 2 by

    u ~ P2 @ R_rect @ Tr_velo_cam @ x

with ``Tr_velo_cam`` (3x4, LiDAR -> camera 0), ``R_rect`` (3x3, camera 0 -> rectified camera 0)
and ``P2`` (3x4, rectified camera 0 -> pixels of camera 2; its last column holds camera 2's
baseline offset). The node instead projects with ``K`` (the first 3x3 of ``P2``, as
``CameraInfo.k`` carries it) from camera 2's own optical frame. :func:`lidar_to_camera2` is the
4x4 that makes the two agree: ``K @ (T @ x)[:3] ~ P2 @ R_rect @ Tr @ x`` exactly, because
``P2 = K @ [I | t]`` with ``t = K^-1 @ P2[:, 3]``, so ``T = [I | t] @ R_rect @ Tr``.

Key names of both file families are read:

- tracking ``<split>/calib/<seq>.txt``: ``P2:``, ``R_rect`` (or ``R0_rect:``), ``Tr_velo_cam``;
- raw ``<date>/calib_cam_to_cam.txt`` (``P_rect_02``, ``R_rect_00``, ``S_rect_02``) together with
  ``<date>/calib_velo_to_cam.txt`` (``R``, ``T``): :func:`read_kitti_calib` merges the pair.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stemseg_core.data.kitti_camera import read_calib, velo_to_cam_of

#: Raw KITTI's calibration files, in the date folder.
RAW_CAM_TO_CAM = "calib_cam_to_cam.txt"
RAW_VELO_TO_CAM = "calib_velo_to_cam.txt"
#: Keys of camera 2's projection and of the rectifying rotation, tracking names first.
PROJECTION_KEYS = ("P2", "P_rect_02")
RECT_KEYS = ("R_rect", "R0_rect", "R_rect_00")


def read_kitti_calib(path: str | Path) -> dict[str, np.ndarray]:
    """All matrices of a KITTI calibration: a tracking calib file, a raw date folder, or either
    raw file (its sibling is merged in when present). FileNotFoundError when none exists."""
    path = Path(path)
    files = [path / RAW_CAM_TO_CAM, path / RAW_VELO_TO_CAM] if path.is_dir() else [path]
    if path.name in (RAW_CAM_TO_CAM, RAW_VELO_TO_CAM):
        files = [path.parent / RAW_CAM_TO_CAM, path.parent / RAW_VELO_TO_CAM]
    found = [f for f in files if f.is_file()]
    if not found:
        raise FileNotFoundError(f"no KITTI calibration at {path} (expected a tracking calib "
                                f"file, or {RAW_CAM_TO_CAM} / {RAW_VELO_TO_CAM} of a raw date "
                                f"folder)")
    out: dict[str, np.ndarray] = {}
    for f in found:
        out.update(read_calib(f))
    return out


def projection_of(calib: dict[str, np.ndarray]) -> np.ndarray | None:
    """(3, 4) projection of rectified camera 2 (``P2`` / ``P_rect_02``), or None."""
    for key in PROJECTION_KEYS:
        m = calib.get(key)
        if m is not None and m.shape == (3, 4):
            return m
    return None


def rectification_of(calib: dict[str, np.ndarray]) -> np.ndarray:
    """(3, 3) ``R_rect`` / ``R0_rect`` / ``R_rect_00``; identity when the file has none."""
    for key in RECT_KEYS:
        m = calib.get(key)
        if m is not None and m.size == 9:
            return m.reshape(3, 3)
    return np.eye(3)


def camera2_offset(P: np.ndarray) -> np.ndarray:
    """(3,) ``t = K^-1 @ P[:, 3]``: rectified camera 0 -> camera 2's optical frame (metres)."""
    P = np.asarray(P, dtype=np.float64)
    try:
        return np.linalg.solve(P[:, :3], P[:, 3])
    except np.linalg.LinAlgError:
        raise ValueError(f"P2's first 3x3 (K) is singular: {P[:, :3].tolist()}; a camera "
                         f"projection needs fx, fy > 0 and a last row 0 0 1") from None


def lidar_to_camera2(calib: dict[str, np.ndarray]) -> np.ndarray | None:
    """(4, 4) LiDAR -> rectified camera 2 optical frame, ``[I | t] @ R_rect @ Tr_velo_cam`` (see
    the module doc); None without a LiDAR transform. Without a projection, t = 0."""
    Tr = velo_to_cam_of(calib)
    if Tr is None:
        return None
    T = np.eye(4)
    T[:3] = Tr
    R = np.eye(4)
    R[:3, :3] = rectification_of(calib)
    offset = np.eye(4)
    P = projection_of(calib)
    if P is not None:
        offset[:3, 3] = camera2_offset(P)
    return offset @ R @ T


__all__ = ["PROJECTION_KEYS", "RAW_CAM_TO_CAM", "RAW_VELO_TO_CAM", "RECT_KEYS",
           "camera2_offset", "lidar_to_camera2", "projection_of", "read_kitti_calib",
           "rectification_of"]
