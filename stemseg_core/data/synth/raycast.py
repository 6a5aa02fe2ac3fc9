"""Ray casting against the primitives of the synthetic world (pure geometry, metres).

World coordinates are the renderer's: x right, y up, z forward along the road. Rays are
``origin + t * direction``; a miss is ``inf``. Boxes are the renderer's
:data:`~stemseg_core.data.synth.render.Box` tuples (centre x, centre z, yaw, length, width,
bottom y, top y; length runs along the heading ``(sin yaw, 0, cos yaw)``).
"""
from __future__ import annotations

import math

import numpy as np

_EPS = 1e-6


def ray_box(origin: np.ndarray, dirs: np.ndarray, box: tuple) -> np.ndarray:
    """(..., 3) directions from one (3,) origin -> (...) distance t to the box's surface."""
    cx, cz, yaw, length, width, y0, y1 = box
    s, c = math.sin(yaw), math.cos(yaw)
    o = origin - np.array([cx, 0.5 * (y0 + y1), cz])
    # local axes: forward (s, 0, c), right (c, 0, -s), up (0, 1, 0)
    o_loc = np.array([o[0] * s + o[2] * c, o[0] * c - o[2] * s, o[1]])
    d_loc = np.stack([dirs[..., 0] * s + dirs[..., 2] * c, dirs[..., 0] * c - dirs[..., 2] * s,
                      dirs[..., 1]], -1)
    half = np.array([length / 2, width / 2, (y1 - y0) / 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d_loc
        t1 = (-half - o_loc) * inv
        t2 = (half - o_loc) * inv
    t1 = np.nan_to_num(t1, nan=-np.inf)
    t2 = np.nan_to_num(t2, nan=np.inf)
    near = np.minimum(t1, t2).max(-1)
    far = np.maximum(t1, t2).min(-1)
    return np.where((near <= far) & (near > _EPS), near, np.inf)


def ray_ellipsoid(origin: np.ndarray, dirs: np.ndarray, centre: np.ndarray,
                  radii: np.ndarray) -> np.ndarray:
    """(..., 3) directions -> (...) distance t to an axis-aligned ellipsoid (inf: miss)."""
    o = (origin - centre) / radii
    d = dirs / radii
    a = (d * d).sum(-1)
    b = 2 * (d * o).sum(-1)
    cc = float(o @ o) - 1.0
    disc = b * b - 4 * a * cc
    root = np.sqrt(np.maximum(disc, 0))
    t = (-b - root) / (2 * a)
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def ray_ground(origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """(..., 3) directions -> (...) distance t to the ground plane y = 0 (inf: upwards)."""
    dy = dirs[..., 1]
    with np.errstate(divide="ignore"):
        t = -origin[1] / dy
    return np.where(dy < -_EPS, t, np.inf)
