"""From pixels to objects: metric 3-D position, size and velocity of tracked instances.

No ROS here. Camera frame everywhere: the optical frame of the colour camera (x right, y down,
z forward, metres; REP 103 ``_optical``). :mod:`.depth` (depth image units, back-projection),
:mod:`.lidar` (LiDAR points onto the image grid), :mod:`.objects3d` (per-instance position and
size from a frame's masks), :mod:`.velocity` (per-track velocity filter), :mod:`.tracks3d` (both,
per frame of tracked instances).
"""
from __future__ import annotations

from stemseg_core.geometry.depth import depth_to_metres, depth_to_mm, intrinsics_of
from stemseg_core.geometry.lidar import lidar_depth_image
from stemseg_core.geometry.objects3d import (
    Object3D,
    grid_step,
    label_grid,
    lift_from_depth,
    lift_from_points,
)
from stemseg_core.geometry.tracks3d import Track3D, TrackLifter
from stemseg_core.geometry.velocity import VelocityFilter

__all__ = ["Object3D", "Track3D", "TrackLifter", "VelocityFilter", "depth_to_metres",
           "depth_to_mm", "grid_step", "intrinsics_of", "label_grid", "lidar_depth_image",
           "lift_from_depth", "lift_from_points"]
