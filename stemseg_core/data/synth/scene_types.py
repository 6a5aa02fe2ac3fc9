"""Types and constants shared by the synthetic world, its renderer and its annotation."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CAR, PEDESTRIAN, IGNORE_CLASS = 1, 2, 10
IGNORE_ID = 10000
FPS = 10.0
CAM_HEIGHT = 1.65
NEAR = 1.5  # metres: geometry is clamped to this depth (camera frame before yaw)


@dataclass
class SynthParams:
    """Generator parameters (image size, sequence length, object counts)."""

    height: int = 192
    width: int = 640
    frames: int = 60
    min_objects: int = 2
    max_objects: int = 8
    #: Visible parts smaller than this fraction of the image become ignore regions.
    min_area_fraction: float = 4e-4


@dataclass
class FrameObject:
    """One agent drawn in a frame (``obj_id`` 0 = not annotated, IGNORE_ID = ignore region)."""

    obj_id: int
    class_id: int
    depth: float
    area: int
    full_mask: np.ndarray | None = None  # unoccluded silhouette (only when asked for)


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    instance_map: np.ndarray  # (H, W) uint16 obj ids, IGNORE_ID for ignore regions
    objects: list[FrameObject] = field(default_factory=list)
    depth: np.ndarray | None = None  # (H, W) float32 optical depth z, metres, 0 = no return
    points: np.ndarray | None = None  # (N, 4) float32 LiDAR x y z reflectance (KITTI velo)


@dataclass
class Agent:
    """One car or pedestrian of the simulated street (world coordinates, metres)."""


    kind: int  # CAR / PEDESTRIAN
    x: float
    z: float
    yaw: float  # heading: 0 = +Z (away from the camera), pi/2 = +X
    speed: float
    length: float
    width: float
    height: float
    colors: list[np.ndarray]
    lane: float | None = None
    phase: float = 0.0
    van: bool = False
    obj_id: int = 0
    unseen: int = 0  # consecutive frames without visible pixels
