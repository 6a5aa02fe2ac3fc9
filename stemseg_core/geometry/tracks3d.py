"""A frame's tracked instances -> 3-D position, size and velocity per track (what the node
publishes): :func:`~.objects3d.lift_from_depth` / :func:`~.objects3d.lift_from_points` once
per frame, then one :class:`~.velocity.VelocityFilter` over the tracks' positions."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stemseg_core.geometry.objects3d import Object3D, lift_from_depth, lift_from_points
from stemseg_core.geometry.velocity import VelocityFilter


@dataclass
class Track3D:
    """3-D state of one track in one frame (camera optical frame, metres, m/s)."""

    track_id: int
    object: Object3D
    has_velocity: bool
    velocity: np.ndarray  # (3,), zeros without velocity


class TrackLifter:
    """``update(instances, stamp_s, depth=..., K=...)`` or ``(..., points=, velo_to_cam=, K=)``
    -> one :class:`Track3D` per instance (``instances``: objects with ``track_id`` and an
    (H, W) bool ``mask``, e.g. the tracker's TrackedInstance). A frame without depth and
    points is answered without 3-D (``has_position`` False) and leaves the velocities alone."""

    def __init__(self, velocity: VelocityFilter | None = None, step: int | None = None,
                 **lift_kw) -> None:
        self.velocity = velocity or VelocityFilter()
        self.step = step
        self.lift_kw = lift_kw

    def update(self, instances: Sequence, stamp_s: float, *, K: np.ndarray | None = None,
               depth: np.ndarray | None = None, points: np.ndarray | None = None,
               velo_to_cam: np.ndarray | None = None) -> list[Track3D]:
        masks = [inst.mask for inst in instances]
        if masks and depth is not None and K is not None:
            objs = lift_from_depth(masks, depth, K, step=self.step, **self.lift_kw)
        elif masks and points is not None and velo_to_cam is not None and K is not None:
            objs = lift_from_points(masks, points, velo_to_cam, K, step=self.step,
                                    **self.lift_kw)
        else:
            nan3 = np.full(3, np.nan)
            return [Track3D(inst.track_id, Object3D(False, nan3, nan3, 0), False, np.zeros(3))
                    for inst in instances]
        out = []
        for inst, obj in zip(instances, objs):
            has_v, v = False, np.zeros(3)
            if obj.has_position:
                has_v, v = self.velocity.update(inst.track_id, obj.position, stamp_s)
            out.append(Track3D(inst.track_id, obj, has_v, v))
        self.velocity.forget(now_s=stamp_s)
        return out

    def reset(self) -> None:
        """Forget all tracks (a new stream)."""
        self.velocity.forget(keep=set())
