"""Synthetic KITTI MOTS driving sequences (``stemseg synth``).

A tiny 3-D street world is simulated and rendered with numpy/OpenCV: a road seen through a
pinhole camera (perspective, horizon), sidewalks, building facades with window grids, trees and
poles, cars (3-D boxes: body, cabin with glass, wheels, lights, ground shadow; a small palette so
some cars look alike) and pedestrians (articulated: head, torso, swinging arms and legs). Agents
move in world coordinates, so their image size follows their depth; they enter from the horizon,
from behind (overtaking) and from the sides, cross paths and occlude each other. Each frame is
drawn far-to-near (painter's algorithm on the distance from the camera to the agent's
footprint) into the RGB image and into an id map at the same time, so masks are exactly the
visible parts and never overlap; static props (poles, trees) occlude agents too. The camera
pans and shakes, the lighting drifts over the sequence, and vignetting, blur and sensor noise
are added.

Annotation rules: a visible part smaller than ``min_area_fraction`` of the image becomes an ignore
region (class 10, id 10000) for that frame, an invisible agent is dropped for that frame. Track ids
are ``class * 1000 + k`` (k = 1, 2, ... per class, in order of first appearance).

Output layout (that of KITTI MOTS, plus what TrackEval's ``KittiMOTS`` reads directly)::

    DIR/training/image_02/<seq:04d>/<frame:06d>.png   RGB image
    DIR/instances/<seq:04d>/<frame:06d>.png           uint16, pixel = obj_id, 0 = background
    DIR/instances_txt/<seq:04d>.txt                   "frame obj_id class_id h w rle" lines
    DIR/label_02/<seq:04d>.txt                        copy of instances_txt (TrackEval GT layout)
    DIR/{train,val,fulltrain}.seqmap                  "<seq:04d> empty 000000 <last:06d>"
    DIR/evaluate_mots.seqmap.{train,val,training}     the same seqmaps under TrackEval's names
                                                      (a comment line first when 1 sequence)
    DIR/synth_info.json                               generator parameters and the split

TrackEval: ``trackeval.datasets.KittiMOTS({"GT_FOLDER": DIR, "SPLIT_TO_EVAL": "val", ...})`` works
as is: its default ``GT_LOC_FORMAT`` is ``{gt_folder}/label_02/{seq}.txt`` and it reads the seqmap
``{gt_folder}/evaluate_mots.seqmap.{split}`` (row: seq, *, *, last frame; length = last + 1).
(``GT_LOC_FORMAT="{gt_folder}/instances_txt/{seq}.txt"`` reads the same data.)

Splits: the last ``round(N * val_fraction)`` sequences are ``val`` and the rest ``train``; each
sequence draws from ``numpy.random.SeedSequence([seed, split, seq])``, so val scenes come from a
different seed space than train scenes. Same arguments give byte-identical files.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.rle import mask_to_kitti_string

CAR, PEDESTRIAN, IGNORE_CLASS = 1, 2, 10
IGNORE_ID = 10000
FPS = 10.0
CAM_HEIGHT = 1.65
NEAR = 1.5  # metres: geometry is clamped to this depth (camera frame before yaw)
SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = 1 << SHIFT

CAR_PALETTE = np.array([
    (232, 232, 230), (235, 235, 238), (178, 180, 184), (180, 182, 185), (105, 106, 112),
    (28, 28, 32), (30, 30, 34), (32, 44, 92), (150, 24, 26), (95, 20, 24), (40, 78, 155),
    (40, 76, 52), (190, 176, 140), (215, 175, 40), (80, 60, 50)], dtype=np.float64)
SHIRTS = np.array([
    (200, 40, 40), (40, 60, 160), (230, 230, 225), (30, 30, 30), (60, 130, 70), (230, 190, 40),
    (120, 120, 125), (150, 80, 150), (230, 120, 40), (90, 60, 40)], dtype=np.float64)
PANTS = np.array([(40, 50, 90), (25, 25, 28), (60, 60, 65), (170, 150, 110), (80, 60, 40)],
                 dtype=np.float64)
SKIN = np.array([(240, 200, 170), (210, 160, 120), (150, 100, 70), (90, 60, 40)],
                dtype=np.float64)
FACADES = np.array([
    (180, 160, 140), (150, 140, 130), (200, 190, 170), (120, 100, 90), (170, 120, 100),
    (140, 150, 160), (210, 205, 195), (100, 95, 90)], dtype=np.float64)

# box faces over corners [0..3] bottom (front-left, front-right, rear-right, rear-left), [4..7] top
_FACES = np.array([[4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
_FACE_SHADE = np.array([1.12, 1.0, 0.8, 0.95, 0.8])  # top, front, right, rear, left


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


@dataclass
class _Agent:
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


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    return (int(c[0]), int(c[1]), int(c[2]))


class SequenceGenerator:
    """Simulates and renders one sequence. ``frames()`` yields :class:`Frame` objects."""

    def __init__(self, rng: np.random.Generator, params: SynthParams | None = None) -> None:
        self.p = params or SynthParams()
        self.rng = rng
        h, w = self.p.height, self.p.width
        self.h, self.w = h, w
        r = rng
        self.f = 0.58 * w * r.uniform(0.93, 1.07)
        self.cx = w / 2 + r.uniform(-0.02, 0.02) * w
        self.cy = h * r.uniform(0.40, 0.46)
        self.waiting = r.random() < 0.3  # ego waits at an intersection, traffic crosses
        self.v_ego = r.uniform(0.0, 1.0) if self.waiting else r.uniform(3.0, 11.0)
        self.ego_z = 0.0
        self.inter_z = r.uniform(14, 24) if self.waiting else None
        self.target = int(r.integers(max(self.p.min_objects, 4), self.p.max_objects + 1))
        self.last_visible = 0
        self.min_area = max(12, int(round(self.p.min_area_fraction * h * w)))
        # camera motion
        self.yaw_amp, self.yaw_freq = r.uniform(0.0, 0.03), r.uniform(0.02, 0.1)
        self.yaw_phase = r.uniform(0, 2 * np.pi)
        self.shake = r.uniform(0.5, 2.0) * h / 192
        # lighting
        n = self.p.frames
        self.gain = np.linspace(r.uniform(0.65, 1.2), r.uniform(0.65, 1.2), n)
        self.gain *= 1 + 0.06 * np.sin(np.arange(n) * r.uniform(0.05, 0.3) + r.uniform(0, 6))
        t0, t1 = r.uniform(0.88, 1.12, 3), r.uniform(0.88, 1.12, 3)
        self.tint = np.linspace(t0, t1, n)
        self.noise = r.uniform(2.0, 6.0)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rad = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        self.vignette = (1 - r.uniform(0.1, 0.3) * rad / 2).astype(np.float32)[..., None]
        self._make_sky(r)
        self._make_ground_texture(r)
        self._make_world(r)
        self.agents: list[_Agent] = []
        self.next_k = {CAR: 1, PEDESTRIAN: 1}
        for _ in range(self.target):
            self._spawn(initial=True)

    # ---------------------------------------------------------------------------------- setup
    def _make_sky(self, r: np.random.Generator) -> None:
        h, w = self.h, self.w
        top = np.array([r.uniform(60, 140), r.uniform(110, 170), r.uniform(180, 250)])
        if r.random() < 0.35:  # overcast
            top = np.full(3, r.uniform(150, 210)) + r.uniform(-10, 10, 3)
        bottom = np.clip(top + r.uniform(30, 70), 0, 255)
        a = np.linspace(0, 1, h)[:, None, None]
        sky = (top * (1 - a) + bottom * a) * np.ones((1, w, 1))
        for _ in range(int(r.integers(0, 5))):
            c = (int(r.uniform(0, w)), int(r.uniform(0, h * 0.4)))
            ax = (int(r.uniform(0.05, 0.2) * w), int(r.uniform(0.02, 0.06) * h) + 1)
            cloud = np.zeros((h, w), np.float32)
            cv2.ellipse(cloud, c, ax, 0, 0, 360, 1.0, -1)
            cloud = cv2.GaussianBlur(cloud, (0, 0), max(1.0, ax[1] * 0.6))
            sky += cloud[..., None] * (245 - sky) * 0.7
        self.sky = np.clip(sky, 0, 255).astype(np.uint8)

    def _make_ground_texture(self, r: np.random.Generator) -> None:
        tex = r.normal(0, 1, (256, 256)).astype(np.float32)
        tex = cv2.GaussianBlur(tex, (0, 0), 1.2) * 0.9 + cv2.GaussianBlur(tex, (0, 0), 8) * 4
        self.tex = tex / (tex.std() + 1e-6) * 0.07
        h, w = self.h, self.w
        v = np.arange(h, dtype=np.float32)[:, None] - self.cy
        z = np.where(v > 1, self.f * CAM_HEIGHT / np.maximum(v, 1), 1e4).astype(np.float32)
        x = (np.arange(w, dtype=np.float32)[None, :] - self.cx) * z / self.f
        self.gx = (x * 6).astype(np.float32)
        self.gz = np.broadcast_to(z * 6, (h, w)).astype(np.float32)
        self.gamp = np.clip(1 - z / 45, 0, 1).astype(np.float32)

    def _make_world(self, r: np.random.Generator) -> None:
        span = self.v_ego * self.p.frames / FPS + 160
        self.buildings = []
        for side in (-1, 1):
            z = -30.0
            while z < span:
                length = r.uniform(8, 28)
                if self.inter_z is None or not (z - 10 < self.inter_z < z + length + 10):
                    shade = r.uniform(0.35, 0.8)
                    self.buildings.append(dict(
                        side=side, x=side * r.uniform(12, 15), z0=z, z1=z + length,
                        h=r.uniform(6, 24), color=FACADES[r.integers(len(FACADES))]
                        * r.uniform(0.8, 1.1), win=np.array([shade * 80, shade * 95, shade * 115]),
                        win2=np.array([200, 210, 220]) * r.uniform(0.6, 1.0),
                        pitch=r.uniform(2.6, 3.6), lit=r.random(200) < 0.25))
                z += length + r.uniform(0, 6)
        self.props = []
        for side in (-1, 1):
            z = r.uniform(-20, 0)
            while z < span:
                if self.inter_z is None or abs(z - self.inter_z) > 9:
                    self.props.append(dict(kind="pole", x=side * 7.9, z=z,
                                           color=np.array([90, 95, 100]) * r.uniform(0.6, 1.2)))
                z += r.uniform(20, 35)
            z = r.uniform(-20, 0)
            while z < span:
                if self.inter_z is None or abs(z - self.inter_z) > 9:
                    if r.random() < 0.6:
                        self.props.append(dict(
                            kind="tree", x=side * r.uniform(9.8, 11.2), z=z, h=r.uniform(4, 7),
                            color=np.array([40, 100, 45]) * r.uniform(0.6, 1.3)))
                    else:
                        self.props.append(dict(kind="bin", x=side * r.uniform(8.2, 9), z=z,
                                               color=np.array(SHIRTS[r.integers(10)]) * 0.7))
                z += r.uniform(8, 20)

    # ----------------------------------------------------------------------------- simulation
    def _new_car(self, r: np.random.Generator, lane: float, z: float, yaw: float,
                 speed: float) -> _Agent:
        van = r.random() < 0.15
        base = CAR_PALETTE[r.integers(len(CAR_PALETTE))]
        if r.random() < 0.7:
            base = base + r.uniform(-12, 12, 3)
        length = r.uniform(4.8, 5.6) if van else r.uniform(3.8, 4.8)
        return _Agent(CAR, lane, z, yaw, speed, length, r.uniform(1.65, 1.95),
                      r.uniform(1.9, 2.3) if van else r.uniform(1.35, 1.65),
                      [np.clip(base, 0, 255)], lane=lane, van=van)

    def _new_ped(self, r: np.random.Generator, x: float, z: float, yaw: float) -> _Agent:
        colors = [SHIRTS[r.integers(len(SHIRTS))] * r.uniform(0.8, 1.1),
                  PANTS[r.integers(len(PANTS))] * r.uniform(0.8, 1.2),
                  SKIN[r.integers(len(SKIN))], np.array([30, 25, 20]) * r.uniform(0.7, 3)]
        return _Agent(PEDESTRIAN, x, z, yaw, r.uniform(0.8, 1.7), 0.4, 0.5, r.uniform(1.5, 1.92),
                      [np.clip(c, 0, 255) for c in colors], phase=r.uniform(0, 2 * np.pi))

    def _spawn(self, initial: bool = False) -> None:
        r, ez, ve = self.rng, self.ego_z, self.v_ego
        kind = r.random()
        if self.waiting and kind < 0.35:  # crossing traffic at the intersection
            d = 1 if r.random() < 0.5 else -1
            zw = self.inter_z + (-2.5 if d > 0 else 2.5)
            x0 = r.uniform(-25, 25) if initial else -d * r.uniform(35, 45)
            self.agents.append(self._new_car(r, x0, zw, d * np.pi / 2, r.uniform(4, 9)))
            self.agents[-1].lane = None
        elif kind < 0.6:  # cars along the road
            lane = float(r.choice([-3.5, 0.0, 3.5, 3.5, -6.3, 6.3]))
            if abs(lane) > 6:
                zc = r.uniform(8, 60) if initial or ve < 1 else r.uniform(45, 75)
                if not initial and ve < 1:
                    return
                self.agents.append(self._new_car(r, lane, ez + zc, 0.0, 0.0))
            elif lane < 0:  # oncoming
                zc = r.uniform(10, 60) if initial else r.uniform(50, 75)
                self.agents.append(self._new_car(r, lane, ez + zc, np.pi, r.uniform(5, 12)))
            else:
                behind = lane > 0 and not initial and ve > 2 and r.random() < 0.4
                zc = -7.0 if behind else (r.uniform(12, 60) if initial else r.uniform(45, 75))
                v = ve + (r.uniform(2, 5) if behind else r.uniform(-3, 1.5))
                if lane == 0.0:
                    v = max(v, ve)
                self.agents.append(self._new_car(r, lane, ez + zc, 0.0, max(0.0, v)))
        else:  # pedestrians
            side = 1 if r.random() < 0.5 else -1
            if r.random() < (0.5 if self.waiting else 0.15):  # crossing the road
                zw = self.inter_z - 6.5 if self.waiting else ez + r.uniform(18, 40)
                zw += r.uniform(-1.2, 1.2)
                x0 = r.uniform(-7, 7) if initial else side * 9.0
                self.agents.append(self._new_ped(r, x0, zw, -side * np.pi / 2))
            else:
                zc = r.uniform(6, 45) if initial else r.uniform(25, 50)
                yaw = 0.0 if r.random() < 0.5 else np.pi
                self.agents.append(self._new_ped(r, side * r.uniform(8.2, 11.2), ez + zc, yaw))

    def _step(self, t: int) -> None:
        dt = 1 / FPS
        self.ego_z += self.v_ego * dt
        agents = self.agents
        for a in agents:
            if a.kind == CAR and a.lane is not None and a.speed > 0:
                for b in agents:  # follow the car ahead in the same lane
                    if b is a or b.kind != CAR or b.lane != a.lane:
                        continue
                    ahead = (b.z - a.z) * math.cos(a.yaw)
                    if 0 < ahead < a.length / 2 + b.length / 2 + 6:
                        a.speed = min(a.speed, b.speed)
                if a.lane == 0.0 and a.z - self.ego_z < 12:
                    a.speed = max(a.speed, self.v_ego + 0.5)
            a.x += a.speed * dt * math.sin(a.yaw)
            a.z += a.speed * dt * math.cos(a.yaw)
            if a.kind == PEDESTRIAN:
                a.phase += 2 * np.pi * a.speed * dt / (0.75 * a.height)
        keep = []
        for a in agents:
            zc = a.z - self.ego_z
            if -12 < zc < 110 and abs(a.x) < 50 and not (a.kind == PEDESTRIAN and abs(a.x) > 12) \
                    and a.unseen < 10:
                keep.append(a)
        self.agents = keep
        vis = self.last_visible
        if len(self.agents) < self.p.max_objects + 2 and (
                vis < self.target and self.rng.random() < 0.4 or vis < self.p.min_objects):
            self._spawn()

    # ------------------------------------------------------------------------------ rendering
    def _camera(self, t: int) -> None:
        r = self.rng
        self.yaw = self.yaw_amp * math.sin(self.yaw_freq * t + self.yaw_phase)
        self.cyt = self.cy + r.normal(0, self.shake)
        self.cxt = self.cx + r.normal(0, self.shake * 0.5)

    def _project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) world points (x, y up, z) -> (..., 2) pixel coordinates (float)."""
        x = pts[..., 0]
        y = pts[..., 1]
        z = np.maximum(pts[..., 2] - self.ego_z, NEAR)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        xr = c * x - s * z
        zr = s * x + c * z
        u = self.cxt + self.f * xr / zr
        v = self.cyt + self.f * (CAM_HEIGHT - y) / zr
        return np.stack([u, v], -1)

    @staticmethod
    def _fix(pts: np.ndarray) -> np.ndarray:
        return np.round(np.clip(pts, -1e5, 1e5) * ONE).astype(np.int32)

    def _poly(self, imgs, pts2d: np.ndarray, colors, hull: bool = False) -> None:
        p = self._fix(pts2d).reshape(-1, 1, 2)
        if hull:
            p = cv2.convexHull(p)
        for img, col in zip(imgs, colors):
            cv2.fillConvexPoly(img, p, col, cv2.LINE_8, SHIFT)

    def _box(self, cx, cz, yaw, length, width, y0, y1) -> np.ndarray:
        c, s = math.cos(yaw), math.sin(yaw)
        fl = np.array([[length / 2, -width / 2], [length / 2, width / 2],
                       [-length / 2, width / 2], [-length / 2, -width / 2]])
        # local (forward, right) -> world: forward = (sin yaw, cos yaw), right = (cos, -sin)
        xs = cx + fl[:, 0] * s + fl[:, 1] * c
        zs = cz + fl[:, 0] * c - fl[:, 1] * s
        bot = np.stack([xs, np.full(4, y0), zs], 1)
        top = np.stack([xs, np.full(4, y1), zs], 1)
        return np.concatenate([bot, top], 0)

    def _visible_faces(self, box: np.ndarray) -> list[int]:
        center = box.mean(0)
        cam = np.array([0.0, CAM_HEIGHT, self.ego_z])
        out = []
        for i, f in enumerate(_FACES):
            fc = box[f].mean(0)
            if np.dot(fc - center, cam - fc) > 1e-6:
                out.append(i)
        return out

    def _draw_ground(self, img: np.ndarray, t: int) -> None:
        h = self.h
        far = self.ego_z + 400
        ez = self.ego_z + NEAR

        def strip(x0, x1, z0, z1, col):
            q = np.array([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]])
            self._poly([img], self._project(q), [col])

        hz = int(max(0, min(h, self.cyt - 2)))
        img[hz:] = (118, 116, 112)
        strip(-60, 60, ez, far, (122, 120, 116))  # sidewalk / ground
        strip(-7.5, 7.5, ez, far, (78, 78, 82))  # road
        if self.inter_z is not None:
            iz = self.inter_z
            strip(-200, 200, iz - 5, iz + 5, (80, 80, 84))
            for k in range(-7, 8):  # zebra crossing
                strip(k - 0.25, k + 0.25, iz - 8, iz - 5.5, (200, 200, 195))
        for xe in (-7.5, 7.5):  # curbs
            strip(xe - 0.15, xe + 0.15, ez, far, (165, 162, 155))
        for xe in (-5.3, 5.3):
            strip(xe - 0.07, xe + 0.07, ez, far, (210, 210, 205))
        z = math.floor(self.ego_z / 9) * 9
        for k in range(14):  # dashed lane markings, fixed in the world
            z0 = z + k * 9
            for xe in (-1.75, 1.75):
                strip(xe - 0.07, xe + 0.07, max(z0, ez), z0 + 3, (215, 215, 210))
        # world-fixed ground texture
        mx = self.gx
        mz = (self.gz + self.ego_z * 6).astype(np.float32)
        tex = cv2.remap(self.tex, mx[hz:], mz[hz:], cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        g = img[hz:].astype(np.float32) * (1 + tex * self.gamp[hz:])[..., None]
        img[hz:] = np.clip(g, 0, 255).astype(np.uint8)

    def _draw_buildings(self, img: np.ndarray) -> None:
        ez = self.ego_z
        order = sorted(self.buildings, key=lambda b: -max(b["z0"] - ez, 0) - abs(b["x"]) * 0.01)
        for b in order:
            if b["z1"] - ez < NEAR or b["z0"] - ez > 150:
                continue
            x, z0, z1, hgt = b["x"], b["z0"], b["z1"], b["h"]
            face = np.array([[x, 0, z0], [x, 0, z1], [x, hgt, z1], [x, hgt, z0]])
            self._poly([img], self._project(face), [_rgb(b["color"])])
            if z0 - ez > NEAR:
                end = np.array([[x, 0, z0], [x + b["side"] * 15, 0, z0],
                                [x + b["side"] * 15, hgt, z0], [x, hgt, z0]])
                self._poly([img], self._project(end), [_rgb(b["color"] * 0.75)])
            if z0 - ez > 70:
                continue
            pitch = b["pitch"]
            zs = np.arange(z0 + 1.0, z1 - 1.8, 2.8)
            ys = np.arange(2.2, hgt - 1.5, pitch)
            if len(zs) == 0 or len(ys) == 0:
                continue
            zz, yy = np.meshgrid(zs, ys)
            zz, yy = zz.ravel(), yy.ravel()
            keep = zz - ez > NEAR + 0.5
            zz, yy = zz[keep], yy[keep]
            if len(zz) == 0:
                continue
            q = np.stack([np.stack([np.full_like(zz, x), yy, zz], 1),
                          np.stack([np.full_like(zz, x), yy, zz + 1.6], 1),
                          np.stack([np.full_like(zz, x), yy + 1.5, zz + 1.6], 1),
                          np.stack([np.full_like(zz, x), yy + 1.5, zz], 1)], 1)
            p = self._fix(self._project(q))
            lit = b["lit"][np.arange(len(p)) % 200]
            if (~lit).any():
                cv2.fillPoly(img, list(p[~lit]), _rgb(b["win"]), cv2.LINE_8, SHIFT)
            if lit.any():
                cv2.fillPoly(img, list(p[lit]), _rgb(b["win2"]), cv2.LINE_8, SHIFT)

    def _draw_prop(self, img: np.ndarray, idm: np.ndarray, pr: dict) -> None:
        imgs, x, z = [img, idm], pr["x"], pr["z"]
        col = _rgb(pr["color"])
        if pr["kind"] == "pole":
            self._poly(imgs, self._project(self._box(x, z, 0, 0.18, 0.18, 0, 6.5)), [col, 0], True)
            arm = self._box(x - np.sign(x) * 0.9, z, np.pi / 2, 2.0, 0.12, 6.3, 6.45)
            self._poly(imgs, self._project(arm), [col, 0], True)
        elif pr["kind"] == "bin":
            self._poly(imgs, self._project(self._box(x, z, 0, 0.6, 0.6, 0, 1.0)), [col, 0], True)
        else:
            trunk = self._box(x, z, 0, 0.3, 0.3, 0, pr["h"] * 0.6)
            self._poly(imgs, self._project(trunk), [(70, 55, 40), 0], True)
            c = self._project(np.array([[x, pr["h"] * 0.75, z], [x + 1.6, pr["h"] * 0.75, z],
                                        [x, pr["h"] * 0.75 + 1.4, z]]))
            ax = (int(abs(c[1, 0] - c[0, 0]) * ONE), int(abs(c[2, 1] - c[0, 1]) * ONE))
            ctr = (int(c[0, 0] * ONE), int(c[0, 1] * ONE))
            if max(ax) < 4000 * ONE and abs(ctr[0]) < 1e5 * ONE:
                cv2.ellipse(img, ctr, ax, 0, 0, 360, col, -1, cv2.LINE_8, SHIFT)
                cv2.ellipse(idm, ctr, ax, 0, 0, 360, 0, -1, cv2.LINE_8, SHIFT)

    def _draw_car(self, img, idm, a: _Agent, idx: int, full: np.ndarray | None) -> None:
        ids = [img, idm] + ([full] if full is not None else [])
        L, W, H = a.length, a.width, a.height
        body_top = H * (0.62 if a.van else 0.55)
        wl = L / 2 - 0.8
        for fwd in (-wl, wl):
            for side in (-1, 1):
                cx = a.x + fwd * math.sin(a.yaw) + side * (W / 2 - 0.13) * math.cos(a.yaw)
                cz = a.z + fwd * math.cos(a.yaw) - side * (W / 2 - 0.13) * math.sin(a.yaw)
                wb = self._box(cx, cz, a.yaw, 0.64, 0.24, 0.0, 0.62)
                self._poly(ids, self._project(wb), [(22, 22, 24), idx, 1], True)
        body = self._box(a.x, a.z, a.yaw, L, W, 0.25, body_top)
        pb = self._project(body)
        base = a.colors[0]
        self._poly(ids, pb, [_rgb(base), idx, 1], True)
        vis = self._visible_faces(body)
        for fi in vis:
            self._poly([img], pb[_FACES[fi]], [_rgb(np.clip(base * _FACE_SHADE[fi], 0, 255))])
        for fi in vis:  # lights on the front / rear face
            if fi not in (1, 3):
                continue
            q = body[_FACES[fi]]
            lc = (250, 240, 200) if fi == 1 else (200, 20, 20)
            for s0, s1 in ((0.05, 0.2), (0.8, 0.95)):
                a0, a1 = q[0] + (q[1] - q[0]) * s0, q[0] + (q[1] - q[0]) * s1
                yv = np.array([0, body_top * 0.75 - 0.25, 0])
                yv2 = np.array([0, body_top * 0.95 - 0.25, 0])
                lq = np.array([a0 + yv, a1 + yv, a1 + yv2, a0 + yv2])
                self._poly([img], self._project(lq), [lc])
        cl = L * (0.8 if a.van else 0.52)
        off = -L * (0.06 if a.van else 0.08)
        cab = self._box(a.x + off * math.sin(a.yaw), a.z + off * math.cos(a.yaw), a.yaw, cl,
                        W * 0.9, body_top - 0.01, H)
        pc = self._project(cab)
        self._poly(ids, pc, [_rgb(base * 0.95), idx, 1], True)
        glass = np.array([45, 55, 70]) + self.sky[0, 0] * 0.2
        for fi in self._visible_faces(cab):
            q = pc[_FACES[fi]]
            if fi == 0:
                self._poly([img], q, [_rgb(np.clip(base * 1.1, 0, 255))])
                continue
            ctr = q.mean(0)
            inner = ctr + (q - ctr) * np.array([0.82, 0.75])
            self._poly([img], inner, [_rgb(glass * (0.8 if fi in (2, 4) else 1.0))])

    def _draw_ped(self, img, idm, a: _Agent, idx: int, full: np.ndarray | None) -> None:
        ids = [img, idm] + ([full] if full is not None else [])
        foot = self._project(np.array([a.x, 0.0, a.z]))
        head = self._project(np.array([a.x, a.height, a.z]))
        hp = foot[1] - head[1]
        if hp < 2:
            return
        zc = max(a.z - self.ego_z, NEAR)
        lat = abs(math.sin(a.yaw - math.atan2(a.x, zc)))
        sgn = 1 if math.sin(a.yaw) >= 0 else -1
        sw = math.sin(a.phase)
        u0, v0 = foot
        shirt, pants, skin, hair = (_rgb(c) for c in a.colors)

        def pt(dx, hfrac):
            return (int((u0 + dx * hp) * ONE), int((v0 - hfrac * hp) * ONE))

        def line(p0, p1, col, th):
            th = max(1, int(round(th * hp)))
            for im, c in zip(ids, [col, idx, 1]):
                cv2.line(im, p0, p1, c, th, cv2.LINE_8, SHIFT)

        hip_w = 0.05 * (1 - lat) + 0.01
        step = (0.17 * lat + 0.02) * sgn
        for s in (-1, 1):  # legs: hip -> knee -> foot
            hip = pt(s * hip_w, 0.5)
            knee = pt(s * hip_w + s * step * sw * 0.5, 0.27)
            ft = pt(s * hip_w * 0.8 + s * step * sw, 0.02)
            line(hip, knee, pants, 0.075)
            line(knee, ft, pants, 0.065)
        tw = 0.12 * (1 - lat) + 0.08 * lat
        torso = np.array([[u0 - tw * hp, v0 - 0.82 * hp], [u0 + tw * hp, v0 - 0.82 * hp],
                          [u0 + tw * 0.8 * hp, v0 - 0.48 * hp],
                          [u0 - tw * 0.8 * hp, v0 - 0.48 * hp]])
        self._poly(ids, torso, [shirt, idx, 1])
        for s in (-1, 1):  # arms swing opposite to the legs
            sh = pt(s * (tw - 0.02), 0.8)
            hand = pt(s * (tw + 0.01) - s * step * sw * 0.7, 0.45)
            line(sh, hand, shirt, 0.05)
        hr = max(1, int(0.068 * hp * ONE))
        hc = pt(0, 0.91)
        for im, c in zip(ids, [skin, idx, 1]):
            cv2.circle(im, hc, hr, c, -1, cv2.LINE_8, SHIFT)
        cv2.ellipse(img, pt(0, 0.94), (hr, max(1, hr // 2)), 0, 180, 360, hair, -1, cv2.LINE_8,
                    SHIFT)

    def _draw_shadow(self, img: np.ndarray, a: _Agent) -> None:
        if a.kind == CAR:
            q = self._box(a.x + 0.3, a.z, a.yaw, a.length + 0.4, a.width + 0.3, 0, 0)[:4]
        else:
            q = self._box(a.x + 0.25, a.z, a.yaw, 0.5, 0.6, 0, 0)[:4]
        self._poly([img], self._project(q), [(38, 38, 42)])

    def _depth(self, a_x: float, a_z: float, half_l: float, half_w: float, yaw: float) -> float:
        """Distance from the camera to the nearest point of a (rotated) ground rectangle."""
        dx, dz = -a_x, self.ego_z - a_z
        c, s = math.cos(yaw), math.sin(yaw)
        fwd, right = dx * s + dz * c, dx * c - dz * s
        fwd = max(-half_l, min(half_l, fwd))
        right = max(-half_w, min(half_w, right))
        px = a_x + fwd * s + right * c
        pz = a_z + fwd * c - right * s
        return math.hypot(px, pz - self.ego_z)

    def render(self, t: int, full_masks: bool = False) -> Frame:
        h, w = self.h, self.w
        self._camera(t)
        img = self.sky.copy()
        self._draw_ground(img, t)
        self._draw_buildings(img)
        for a in self.agents:
            self._draw_shadow(img, a)
        idm = np.zeros((h, w), np.uint16)
        items = []
        for i, a in enumerate(self.agents):
            if a.z - self.ego_z + a.length / 2 < NEAR:
                continue
            d = self._depth(a.x, a.z, a.length / 2, a.width / 2, a.yaw)
            items.append((d, 0, i, a))
        for j, pr in enumerate(self.props):
            zc = pr["z"] - self.ego_z
            if NEAR + 0.5 < zc < 90:
                items.append((math.hypot(pr["x"], zc), 1, j, pr))
        items.sort(key=lambda it: (-it[0], it[1], it[2]))
        fulls: dict[int, np.ndarray] = {}
        drawn: list[tuple[int, _Agent, float]] = []
        for d, is_prop, _j, obj in items:
            if is_prop:
                self._draw_prop(img, idm, obj)
                continue
            idx = len(drawn) + 1
            full = np.zeros((h, w), np.uint8) if full_masks else None
            if obj.kind == CAR:
                self._draw_car(img, idm, obj, idx, full)
            else:
                self._draw_ped(img, idm, obj, idx, full)
            drawn.append((idx, obj, d))
            if full is not None:
                fulls[idx] = full.astype(bool)
        # photometrics: lighting drift, vignetting, optics blur, sensor noise
        k = min(t, len(self.gain) - 1)
        fimg = img.astype(np.float32) * (self.gain[k] * self.tint[k]).astype(np.float32)
        fimg *= self.vignette
        fimg = cv2.GaussianBlur(fimg, (3, 3), 0.7)
        fimg += self.rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(self.noise)
        image = np.clip(fimg, 0, 255).astype(np.uint8)
        # annotations from the id map
        areas = np.bincount(idm.ravel(), minlength=len(drawn) + 1)
        lut = np.zeros(len(drawn) + 1, np.uint16)
        objects = []
        big = sorted((d, idx) for idx, a, d in drawn if areas[idx] >= self.min_area)
        too_many = {idx for _d, idx in big[self.p.max_objects:]}  # the farthest -> ignore
        for idx, a, d in drawn:
            area = int(areas[idx])
            a.unseen = a.unseen + 1 if area == 0 else 0
            if area == 0:
                continue
            if area < self.min_area or idx in too_many:
                lut[idx] = IGNORE_ID
                oid, cls = IGNORE_ID, IGNORE_CLASS
            else:
                if a.obj_id == 0 and self.next_k[a.kind] < 1000:
                    a.obj_id = a.kind * 1000 + self.next_k[a.kind]
                    self.next_k[a.kind] += 1
                oid, cls = a.obj_id, a.kind
                lut[idx] = oid
            objects.append(FrameObject(oid, cls, d, area, fulls.get(idx)))
        self.last_visible = sum(1 for o in objects if o.obj_id != IGNORE_ID)
        return Frame(image, lut[idm], objects)

    def frames(self, full_masks: bool = False):
        for t in range(self.p.frames):
            if t > 0:
                self._step(t)
            yield self.render(t, full_masks)


# -------------------------------------------------------------------------------------- files


def split_of(seq: int, num_sequences: int, val_fraction: float) -> str:
    n_val = int(round(num_sequences * val_fraction))
    if val_fraction > 0 and num_sequences >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, num_sequences - 1) if num_sequences > 1 else 0
    return "val" if seq >= num_sequences - n_val else "train"


def sequence_generator(seed: int, seq: int, split: str, params: SynthParams) -> SequenceGenerator:
    ss = np.random.SeedSequence([int(seed), 1 if split == "val" else 0, int(seq)])
    return SequenceGenerator(np.random.Generator(np.random.PCG64(ss)), params)


def instances_txt_lines(t: int, instance_map: np.ndarray) -> list[str]:
    """KITTI MOTS ``instances_txt`` lines of one frame from its uint16 instance map."""
    h, w = instance_map.shape
    lines = []
    for oid in np.unique(instance_map):
        if oid == 0:
            continue
        cls = IGNORE_CLASS if oid == IGNORE_ID else int(oid) // 1000
        rle = mask_to_kitti_string(instance_map == oid)
        lines.append(f"{t} {int(oid)} {cls} {h} {w} {rle}")
    return lines


def write_seqmap(path: Path, seqs: list[tuple[int, int]], trackeval: bool = False) -> None:
    """KITTI MOTS seqmap. TrackEval (1.3.0) sniffs the csv dialect on the text AFTER the first
    line and fails on a one-line seqmap, so ``trackeval=True`` then adds a leading comment line
    (rows with fewer than 4 fields are skipped by TrackEval and :func:`read_seqmap`)."""
    text = "".join(f"{s:04d} empty 000000 {n - 1:06d}\n" for s, n in seqs)
    if trackeval and len(seqs) == 1:
        text = "# seqmap\n" + text
    path.write_text(text)


def generate_dataset(out: str | Path, sequences: int = 12, frames: int = 60, seed: int = 0,
                     height: int = 192, width: int = 640, val_fraction: float = 0.25,
                     verbose: bool = False) -> dict:
    """Write a synthetic KITTI MOTS data set to ``out``; returns the info written to JSON."""
    out = Path(out)
    params = SynthParams(height=height, width=width, frames=frames)
    splits: dict[str, list[tuple[int, int]]] = {"train": [], "val": []}
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    t_start = time.perf_counter()
    for seq in range(sequences):
        split = split_of(seq, sequences, val_fraction)
        gen = sequence_generator(seed, seq, split, params)
        img_dir = out / "training" / "image_02" / f"{seq:04d}"
        ins_dir = out / "instances" / f"{seq:04d}"
        img_dir.mkdir(parents=True, exist_ok=True)
        ins_dir.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        for t, fr in enumerate(gen.frames()):
            cv2.imwrite(str(img_dir / f"{t:06d}.png"), fr.image[..., ::-1], png)
            cv2.imwrite(str(ins_dir / f"{t:06d}.png"), fr.instance_map, png)
            lines += instances_txt_lines(t, fr.instance_map)
        txt = "".join(line + "\n" for line in lines)
        for d in ("instances_txt", "label_02"):
            (out / d).mkdir(parents=True, exist_ok=True)
            (out / d / f"{seq:04d}.txt").write_text(txt)
        splits[split].append((seq, frames))
        if verbose:
            print(f"sequence {seq:04d} ({split}): {frames} frames, "
                  f"{time.perf_counter() - t_start:.1f} s")
    full = sorted(splits["train"] + splits["val"])
    for name, seqs in (("train", splits["train"]), ("val", splits["val"]), ("fulltrain", full)):
        write_seqmap(out / f"{name}.seqmap", seqs)
    for name, seqs in (("train", splits["train"]), ("val", splits["val"]), ("training", full)):
        write_seqmap(out / f"evaluate_mots.seqmap.{name}", seqs, trackeval=True)
    info = {"generator": "stemseg synth", "seed": seed, "sequences": sequences, "frames": frames,
            "height": height, "width": width, "val_fraction": val_fraction,
            "train": [f"{s:04d}" for s, _ in splits["train"]],
            "val": [f"{s:04d}" for s, _ in splits["val"]],
            "classes": {"1": "car", "2": "pedestrian", "10": "ignore"}}
    (out / "synth_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def contact_sheet(data_dir: str | Path, seq: int | str, out_png: str | Path,
                  num: int = 8, cols: int = 2) -> np.ndarray:
    """Save a grid of ``num`` frames of a sequence with instance masks overlaid and outlined."""
    data_dir = Path(data_dir)
    seq = f"{int(seq):04d}"
    paths = sorted((data_dir / "training" / "image_02" / seq).glob("*.png"))
    pick = np.linspace(0, len(paths) - 1, min(num, len(paths))).round().astype(int)
    tiles = []
    for i in pick:
        img = cv2.imread(str(paths[i]), cv2.IMREAD_COLOR)
        ins = cv2.imread(str(data_dir / "instances" / seq / paths[i].name), cv2.IMREAD_UNCHANGED)
        over = img.copy()
        for oid in np.unique(ins):
            if oid == 0:
                continue
            m = ins == oid
            if oid == IGNORE_ID:
                col = np.array([128, 128, 128])
            else:
                rs = np.random.default_rng(int(oid))
                col = rs.integers(60, 256, 3)
            over[m] = (0.45 * img[m] + 0.55 * col).astype(np.uint8)
            cnts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(over, cnts, -1, (255, 255, 255), 1)
            if oid != IGNORE_ID:
                ys, xs = np.nonzero(m)
                cv2.putText(over, str(int(oid)), (int(xs.min()), max(8, int(ys.min()) - 2)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
        cv2.putText(over, f"{seq}/{paths[i].stem}", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 255, 255), 1)
        tiles.append(over)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], 1) for r in range(0, len(tiles), cols)]
    sheet = np.concatenate(rows, 0)
    cv2.imwrite(str(out_png), sheet)
    return sheet


def clean_output(out: str | Path) -> None:
    """Remove the generated folders from ``out`` (used before regenerating in place)."""
    out = Path(out)
    for d in ("training", "instances", "instances_txt", "label_02"):
        if (out / d).is_dir():
            shutil.rmtree(out / d)
