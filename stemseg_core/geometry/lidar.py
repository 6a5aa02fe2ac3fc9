"""LiDAR points seen by the camera: a sparse depth image (for scoring and display)."""
from __future__ import annotations

import numpy as np

from stemseg_core.geometry.depth import intrinsics_of, points_to_camera


def lidar_depth_image(points: np.ndarray, velo_to_cam: np.ndarray, K: np.ndarray,
                      shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 optical depth z (metres, NaN = no point) of the nearest LiDAR point per
    pixel; ``points`` (N, >=3) in the LiDAR frame, ``velo_to_cam`` (3, 4) or (4, 4)."""
    K = intrinsics_of(K)
    cam = points_to_camera(points, velo_to_cam)
    u = np.round(K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]).astype(np.int64)
    v = np.round(K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]).astype(np.int64)
    H, W = shape
    ok = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    flat = np.full(H * W, np.inf)
    np.minimum.at(flat, v[ok] * W + u[ok], cam[ok, 2])
    flat[np.isinf(flat)] = np.nan
    return flat.reshape(H, W).astype(np.float32)
