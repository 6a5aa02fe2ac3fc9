"""Depth images (REP 118 units) and the camera matrix.

A depth image holds the optical depth z per pixel: uint16 millimetres (16UC1) or float metres
(32FC1); 0 or NaN = no return.
"""
from __future__ import annotations

import numpy as np

#: Largest depth a uint16 millimetre image holds.
MAX_MM_DEPTH_M = 65.535


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """(H, W) uint16 millimetres or float metres -> float32 metres, NaN = no return."""
    depth = np.asarray(depth)
    if depth.dtype == np.uint16:
        m = depth.astype(np.float32) * np.float32(1e-3)
        m[depth == 0] = np.nan
        return m
    if depth.dtype.kind != "f":
        raise ValueError(f"depth must be uint16 millimetres or float metres, got {depth.dtype}")
    m = depth.astype(np.float32, copy=True)
    m[~(m > 0) | ~np.isfinite(m)] = np.nan
    return m


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float metres (0/NaN = no return) -> uint16 millimetres; beyond 65.535 m -> 0."""
    d = np.asarray(depth_m, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0) & (d <= MAX_MM_DEPTH_M)
    return np.where(ok, np.round(np.where(ok, d, 0) * 1000), 0).astype(np.uint16)


def intrinsics_of(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) K from a 3x3 K, a 3x4 P (KITTI P2, CameraInfo.p) or their 9/12 flat numbers."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.size == 9:
        K = m.reshape(3, 3)
    elif m.size == 12:
        K = m.reshape(3, 4)[:, :3]
    else:
        raise ValueError(f"camera matrix must be 3x3 or 3x4, got shape {m.shape}")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError(f"camera matrix has no positive focal lengths: fx={K[0, 0]}, "
                         f"fy={K[1, 1]}")
    return K.copy()


def scaled_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of the same camera on a grid resized by (sx, sy) (pixel centres kept)."""
    S = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return S @ K


#: Points closer than this in front of the camera (metres) are left out: behind it or in it.
MIN_POINT_Z = 0.1


def points_to_camera(points: np.ndarray, velo_to_cam: np.ndarray,
                     dtype: type = np.float64) -> np.ndarray:
    """(M, 3) camera-frame x y z of the LiDAR ``points`` ((N, >=3), LiDAR frame) in front of the
    camera (z > MIN_POINT_Z); ``velo_to_cam`` is the (3, 4) or (4, 4) LiDAR -> camera transform."""
    T = np.asarray(velo_to_cam, dtype=np.float64)
    if T.shape not in ((3, 4), (4, 4)):
        raise ValueError(f"velo_to_cam must be 3x4 or 4x4, got shape {T.shape}")
    cam = (np.asarray(points, dtype=dtype)[:, :3] @ T[:3, :3].T.astype(dtype)
           + T[:3, 3].astype(dtype))
    return cam[cam[:, 2] > MIN_POINT_Z]
