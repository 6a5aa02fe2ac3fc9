"""Depth camera and LiDAR of the synthetic street, rendered from the same world as the images.

Camera: the pinhole of the renderer (focal ``f``, principal point ``(cx, cy)``; the per-frame
shake moves the principal point by a few pixels, like a vibrating mount, and is not in the
calibration). Its optical frame is x right, y down, z forward; the depth image holds z
(metres) per pixel, 0 where there is no return (sky, beyond :data:`DEPTH_MAX_M`).
Agent pixels (the draw-index map) take the depth of that agent's 3-D parts (a car: body,
cabin, wheels; a pedestrian: its 0.4 x 0.5 m box; pixels the rasteriser adds at edges: the
parts grown by 2 pixels; limbs outside all that: the depth of the agent's centre), all other
pixels the nearest of ground, buildings and props.

LiDAR: a 64-beam scan with KITTI's HDL-64E geometry (elevations +2 to -24.8 deg, 360 deg,
:data:`LIDAR_AZIMUTH_STEP_DEG` steps, :data:`LIDAR_RANGE_M` range), mounted rigidly on the
camera 0.08 m above and 0.27 m behind it (``Tr_velo_cam``: x forward, y left, z up). Points
are exact hits (no range noise) with a reflectance per material. Neither sensor draws from the
generator's random stream, so images and masks are the same with or without them.
A mixin of :class:`~stemseg_core.data.synth.generator.SequenceGenerator`.
"""
from __future__ import annotations

import math

import numpy as np

from stemseg_core.data.synth.raycast import ray_box, ray_ellipsoid, ray_ground
from stemseg_core.data.synth.render import car_parts
from stemseg_core.data.synth.scene_types import CAM_HEIGHT, CAR, Agent

#: Largest depth a uint16 millimetre image holds (REP 118 16UC1); farther is "no return".
DEPTH_MAX_M = 65.535
LIDAR_BEAMS = 64
LIDAR_ELEVATION_DEG = (2.0, -24.8)
LIDAR_AZIMUTH_STEP_DEG = 0.2
LIDAR_RANGE_M = 120.0
#: LiDAR axes (x forward, y left, z up) in the camera's optical frame, and its origin there.
R_VELO_TO_CAM = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
VELO_ORIGIN_IN_CAM = np.array([0.0, -0.08, -0.27])
#: Reflectance of the materials (0..1).
REFLECTANCE = {"body": 0.5, "cabin": 0.3, "wheel": 0.05, "pedestrian": 0.35, "building": 0.3,
               "pole": 0.6, "bin": 0.4, "trunk": 0.25, "crown": 0.2, "road": 0.08,
               "ground": 0.2}


def velo_to_cam() -> np.ndarray:
    """(3, 4) ``Tr_velo_cam``: camera point = R @ LiDAR point + t."""
    return np.concatenate([R_VELO_TO_CAM, VELO_ORIGIN_IN_CAM[:, None]], 1)


class SensorSimulation:
    """Depth image and LiDAR scan of the current frame (after ``draw``)."""

    def projection(self) -> np.ndarray:
        """(3, 4) P2 of the camera (metres -> pixels), without the per-frame shake."""
        return np.array([[self.f, 0.0, self.cx, 0.0], [0.0, self.f, self.cy, 0.0],
                         [0.0, 0.0, 1.0, 0.0]])

    # -- frames ----------------------------------------------------------------------------
    def _to_cam(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> optical frame of the current (yawed) camera."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        z = pts[..., 2] - self.ego_z
        return np.stack([c * pts[..., 0] - s * z, CAM_HEIGHT - pts[..., 1],
                         s * pts[..., 0] + c * z], -1)

    def _dir_to_world(self, d: np.ndarray) -> np.ndarray:
        """(..., 3) optical-frame directions -> world directions."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.stack([c * d[..., 0] + s * d[..., 2], -d[..., 1],
                         -s * d[..., 0] + c * d[..., 2]], -1)

    def _cam_origin(self) -> np.ndarray:
        return np.array([0.0, CAM_HEIGHT, self.ego_z])

    # -- the world as primitives -----------------------------------------------------------
    def _background(self) -> list[tuple[str, tuple, float]]:
        """("box", Box, reflectance) / ("ellipsoid", (centre, radii), reflectance) of the
        buildings and props near enough to be seen."""
        ez, out = self.ego_z, []
        for b in self.buildings:
            if b["z1"] - ez < -LIDAR_RANGE_M or b["z0"] - ez > LIDAR_RANGE_M:
                continue
            depth = 15.0  # the renderer draws end faces 15 m deep
            out.append(("box", (b["x"] + b["side"] * depth / 2, (b["z0"] + b["z1"]) / 2, 0.0,
                                b["z1"] - b["z0"], depth, 0.0, b["h"]), REFLECTANCE["building"]))
        for pr in self.props:
            x, z = pr["x"], pr["z"]
            if abs(z - ez) > LIDAR_RANGE_M:
                continue
            if pr["kind"] == "pole":
                out.append(("box", (x, z, 0.0, 0.18, 0.18, 0.0, 6.5), REFLECTANCE["pole"]))
                out.append(("box", (x - np.sign(x) * 0.9, z, np.pi / 2, 2.0, 0.12, 6.3, 6.45),
                            REFLECTANCE["pole"]))
            elif pr["kind"] == "bin":
                out.append(("box", (x, z, 0.0, 0.6, 0.6, 0.0, 1.0), REFLECTANCE["bin"]))
            else:
                out.append(("box", (x, z, 0.0, 0.3, 0.3, 0.0, pr["h"] * 0.6),
                            REFLECTANCE["trunk"]))
                out.append(("ellipsoid", (np.array([x, pr["h"] * 0.75, z]),
                                          np.array([1.6, 1.4, 1.6])), REFLECTANCE["crown"]))
        return out

    @staticmethod
    def _agent_parts(a: Agent) -> list[tuple[str, tuple, float]]:
        if a.kind == CAR:
            wheels, body, _top, cab = car_parts(a)
            return ([("box", body, REFLECTANCE["body"]), ("box", cab, REFLECTANCE["cabin"])]
                    + [("box", w, REFLECTANCE["wheel"]) for w in wheels])
        box = (a.x, a.z, a.yaw, a.length, a.width, 0.0, a.height)
        return [("box", box, REFLECTANCE["pedestrian"])]

    @staticmethod
    def _corners(prim: tuple[str, tuple, float]) -> np.ndarray:
        kind, geo, _r = prim
        if kind == "box":
            cx, cz, yaw, length, width, y0, y1 = geo
            s, c = math.sin(yaw), math.cos(yaw)
            fl = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [length / 2, width / 2]
            xs = cx + fl[:, 0] * s + fl[:, 1] * c
            zs = cz + fl[:, 0] * c - fl[:, 1] * s
            return np.array([[x, y, z] for y in (y0, y1) for x, z in zip(xs, zs)])
        centre, radii = geo
        sg = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
        return centre + sg * radii

    @staticmethod
    def _hit(origin: np.ndarray, dirs: np.ndarray, prim: tuple[str, tuple, float]
             ) -> np.ndarray:
        kind, geo, _r = prim
        if kind == "box":
            return ray_box(origin, dirs, geo)
        return ray_ellipsoid(origin, dirs, *geo)

    # -- depth camera ----------------------------------------------------------------------
    def _pixel_dirs(self) -> np.ndarray:
        """(H, W, 3) world directions of the pixels, scaled so that t = optical depth z."""
        u = (np.arange(self.w) - self.cxt) / self.f
        v = (np.arange(self.h) - self.cyt) / self.f
        d = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), -1)
        return self._dir_to_world(d)

    def _pixel_window(self, prim) -> tuple[slice, slice] | None:
        """Image rows/columns a primitive can cover (None: none)."""
        cam = self._to_cam(self._corners(prim))
        if (cam[:, 2] < 0.05).any():
            return (slice(0, self.h), slice(0, self.w)) if (cam[:, 2] > 0).any() else None
        u = self.cxt + self.f * cam[:, 0] / cam[:, 2]
        v = self.cyt + self.f * cam[:, 1] / cam[:, 2]
        u0, u1 = max(0, int(u.min()) - 1), min(self.w, int(u.max()) + 2)
        v0, v1 = max(0, int(v.min()) - 1), min(self.h, int(v.max()) + 2)
        if u0 >= u1 or v0 >= v1:
            return None
        return slice(v0, v1), slice(u0, u1)

    def depth_image(self, idm: np.ndarray, drawn: list[tuple[int, Agent, float]]
                    ) -> np.ndarray:
        """(H, W) float32 optical depth z in metres of the frame just drawn, 0 = no return.

        ``idm`` / ``drawn``: the draw-index map and drawn agents of :meth:`draw`.
        """
        origin = self._cam_origin()
        dirs = self._pixel_dirs()
        depth = ray_ground(origin, dirs)
        for prim in self._background():
            win = self._pixel_window(prim)
            if win is not None:
                depth[win] = np.minimum(depth[win], self._hit(origin, dirs[win], prim))
        flat = idm.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=len(drawn) + 1))])
        out = depth.ravel()
        d_flat = dirs.reshape(-1, 3)
        for idx, a, _dist in drawn:
            pix = order[bounds[idx]:bounds[idx + 1]]
            if len(pix) == 0:
                continue
            parts = self._agent_parts(a)
            t = np.full(len(pix), np.inf)
            for prim in parts:
                t = np.minimum(t, self._hit(origin, d_flat[pix], prim))
            centre = self._to_cam(np.array([a.x, a.height / 2, a.z]))[2]
            miss = ~np.isfinite(t)
            if miss.any():  # pixels the rasteriser adds at the edges: parts grown by 2 px
                grow = 2.0 * max(centre, 1.0) / self.f
                tm = np.full(int(miss.sum()), np.inf)
                for prim in parts:
                    cx, cz, yaw, length, width, y0, y1 = prim[1]
                    big = ("box", (cx, cz, yaw, length + 2 * grow, width + 2 * grow, y0 - grow,
                                   y1 + grow), prim[2])
                    tm = np.minimum(tm, self._hit(origin, d_flat[pix[miss]], big))
                t[miss] = tm
            out[pix] = np.where(np.isfinite(t), t, centre)
        depth = out.reshape(self.h, self.w)
        depth[~(depth <= DEPTH_MAX_M)] = 0.0
        return depth.astype(np.float32)

    # -- LiDAR -----------------------------------------------------------------------------
    def _beam_dirs(self) -> tuple[np.ndarray, np.ndarray]:
        """((B, A, 3) unit directions in the LiDAR frame, (A,) azimuths in radians)."""
        step = math.radians(LIDAR_AZIMUTH_STEP_DEG)
        az = -math.pi + step * np.arange(int(round(2 * math.pi / step)))
        el = np.radians(np.linspace(*LIDAR_ELEVATION_DEG, LIDAR_BEAMS))
        ce = np.cos(el)[:, None]
        d = np.stack(np.broadcast_arrays(ce * np.cos(az), ce * np.sin(az),
                                         np.sin(el)[:, None]), -1)
        return d, az

    def _velo_columns(self, prim, n_az: int, origin_w: np.ndarray) -> np.ndarray | slice:
        """Azimuth columns of the scan a primitive can cover."""
        corners = self._corners(prim)
        foot = corners[:, [0, 2]] - origin_w[[0, 2]]
        cam = self._to_cam(corners) - VELO_ORIGIN_IN_CAM
        velo = cam @ R_VELO_TO_CAM  # R^T applied to row vectors
        az = np.arctan2(velo[:, 1], velo[:, 0])
        ref = az[0]
        delta = (az - ref + np.pi) % (2 * np.pi) - np.pi
        inside = (np.abs(foot).max() < 1e-9 or np.linalg.norm(foot, axis=1).min() < 1.0)
        if inside or delta.max() - delta.min() > np.pi:
            return slice(None)
        step = 2 * np.pi / n_az
        lo = int(math.floor((ref + delta.min() + np.pi) / step)) - 1
        hi = int(math.ceil((ref + delta.max() + np.pi) / step)) + 1
        if hi - lo + 1 >= n_az:
            return slice(None)
        return np.arange(lo, hi + 1) % n_az

    def lidar_scan(self) -> np.ndarray:
        """(N, 4) float32 KITTI velodyne points (x forward, y left, z up, reflectance)."""
        dv, _az = self._beam_dirs()
        n_az = dv.shape[1]
        dw = self._dir_to_world(dv @ R_VELO_TO_CAM.T)
        origin = self._cam_origin() + self._dir_to_world(VELO_ORIGIN_IN_CAM)
        rng = ray_ground(origin, dw)
        road = np.abs(origin[0] + rng * dw[..., 0]) < 7.5
        refl = np.where(road, REFLECTANCE["road"], REFLECTANCE["ground"])
        prims = self._background()
        for a in self.agents:
            prims += self._agent_parts(a)
        for prim in prims:
            cols = self._velo_columns(prim, n_az, origin)
            t = self._hit(origin, dw[:, cols], prim)
            closer = t < rng[:, cols]
            rng[:, cols] = np.where(closer, t, rng[:, cols])
            refl[:, cols] = np.where(closer, prim[2], refl[:, cols])
        keep = rng <= LIDAR_RANGE_M
        pts = dv[keep] * rng[keep][:, None]
        return np.concatenate([pts, refl[keep][:, None]], 1).astype(np.float32)
