"""Per-track velocity from positions over time: a constant-velocity Kalman filter per track.

State per track and axis: position p and velocity v (m, m/s; camera optical frame, so the
velocity is relative to the camera: no ego-motion is removed). Prediction over dt adds white
acceleration noise (``accel_std`` m/s^2); a position measurement has noise
``meas_std_m + meas_std_fraction * z``. The second measurement initialises v by the finite
difference, so a track has a velocity (``has_velocity``) from its second position on. A track
unseen for more than ``max_gap_s`` or jumping farther than ``max_jump_m`` starts over.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Track:
    stamp: float
    x: np.ndarray  # (3, 2) per axis [p, v]
    P: np.ndarray  # (3, 2, 2) per axis covariance
    updates: int


class VelocityFilter:
    """``update(track_id, position, stamp_s)`` -> (has_velocity, (3,) velocity m/s)."""

    def __init__(self, accel_std: float = 3.0, meas_std_m: float = 0.1,
                 meas_std_fraction: float = 0.02, max_gap_s: float = 1.0,
                 max_jump_m: float = 10.0) -> None:
        self.accel_std = accel_std
        self.meas_std_m = meas_std_m
        self.meas_std_fraction = meas_std_fraction
        self.max_gap_s = max_gap_s
        self.max_jump_m = max_jump_m
        self.tracks: dict[int, _Track] = {}

    def _r(self, position: np.ndarray) -> float:
        return (self.meas_std_m + self.meas_std_fraction * abs(float(position[2]))) ** 2

    def update(self, track_id: int, position: np.ndarray, stamp_s: float
               ) -> tuple[bool, np.ndarray]:
        """Feed one position (3,) of a track at ``stamp_s`` (seconds); returns its velocity."""
        z = np.asarray(position, dtype=np.float64)
        r = self._r(z)
        tr = self.tracks.get(track_id)
        dt = None if tr is None else stamp_s - tr.stamp
        if tr is None or not 0 < dt <= self.max_gap_s or \
                np.linalg.norm(z - tr.x[:, 0] - tr.x[:, 1] * dt) > self.max_jump_m:
            cov = np.diag([r, 1e6])
            self.tracks[track_id] = _Track(stamp_s, np.stack([z, np.zeros(3)], 1),
                                           np.repeat(cov[None], 3, 0), 1)
            return False, np.zeros(3)
        if tr.updates == 1:  # two-point start: exact finite difference
            v = (z - tr.x[:, 0]) / dt
            cov = np.array([[r, r / dt], [r / dt, 2 * r / dt ** 2]])
            tr.x, tr.P = np.stack([z, v], 1), np.repeat(cov[None], 3, 0)
        else:
            F = np.array([[1.0, dt], [0.0, 1.0]])
            q = self.accel_std ** 2
            Q = q * np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]])
            x = tr.x @ F.T  # (3, 2)
            P = F @ tr.P @ F.T + Q
            s = P[:, 0, 0] + r  # innovation variance per axis
            gain = P[:, :, 0] / s[:, None]  # (3, 2)
            x = x + gain * (z - x[:, 0])[:, None]
            P = P - gain[:, :, None] * P[:, 0, None, :]
            tr.x, tr.P = x, P
        tr.stamp = stamp_s
        tr.updates += 1
        return True, tr.x[:, 1].copy()

    def forget(self, keep: set[int] | None = None, now_s: float | None = None) -> None:
        """Drop tracks not in ``keep`` and/or unseen for more than ``max_gap_s`` at ``now_s``."""
        for tid in list(self.tracks):
            stale = now_s is not None and now_s - self.tracks[tid].stamp > self.max_gap_s
            if stale or (keep is not None and tid not in keep):
                del self.tracks[tid]
