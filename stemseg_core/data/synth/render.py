"""Rendering of the simulated street: pinhole projection, sky, ground, buildings, props, cars,
pedestrians, shadows, then photometrics (lighting drift, vignetting, blur, sensor noise).

Each frame is drawn far-to-near into the RGB image and into a draw-index map at the same time,
so the visible part of every agent is exact. A mixin of
:class:`~stemseg_core.data.synth.generator.SequenceGenerator`.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from stemseg_core.data.synth.scene_types import CAM_HEIGHT, CAR, NEAR, Agent

SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = 1 << SHIFT

# box faces over corners [0..3] bottom (front-left, front-right, rear-right, rear-left), [4..7] top
_FACES = np.array([[4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
_FACE_SHADE = np.array([1.12, 1.0, 0.8, 0.95, 0.8])  # top, front, right, rear, left


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    return (int(c[0]), int(c[1]), int(c[2]))


#: A box of the world: (centre x, centre z, yaw, length, width, bottom y, top y), metres.
Box = tuple[float, float, float, float, float, float, float]


def car_parts(a: Agent) -> tuple[list[Box], Box, float, Box]:
    """The boxes a car is drawn from: (4 wheels, body, body top y, cabin); the one source of a
    car's shape for the renderer and the depth/LiDAR simulation."""
    L, W, H = a.length, a.width, a.height
    body_top = H * (0.62 if a.van else 0.55)
    wl = L / 2 - 0.8
    wheels = []
    for fwd in (-wl, wl):
        for side in (-1, 1):
            cx = a.x + fwd * math.sin(a.yaw) + side * (W / 2 - 0.13) * math.cos(a.yaw)
            cz = a.z + fwd * math.cos(a.yaw) - side * (W / 2 - 0.13) * math.sin(a.yaw)
            wheels.append((cx, cz, a.yaw, 0.64, 0.24, 0.0, 0.62))
    body = (a.x, a.z, a.yaw, L, W, 0.25, body_top)
    cl = L * (0.8 if a.van else 0.52)
    off = -L * (0.06 if a.van else 0.08)
    cab = (a.x + off * math.sin(a.yaw), a.z + off * math.cos(a.yaw), a.yaw, cl, W * 0.9,
           body_top - 0.01, H)
    return wheels, body, body_top, cab


class Renderer:
    """Projection and drawing (uses the camera, world and agents of the generator)."""

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

    def _draw_car(self, img, idm, a: Agent, idx: int, full: np.ndarray | None) -> None:
        ids = [img, idm] + ([full] if full is not None else [])
        wheels, body_box, body_top, cab_box = car_parts(a)
        for wheel in wheels:
            self._poly(ids, self._project(self._box(*wheel)), [(22, 22, 24), idx, 1], True)
        body = self._box(*body_box)
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
        cab = self._box(*cab_box)
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

    def _draw_ped(self, img, idm, a: Agent, idx: int, full: np.ndarray | None) -> None:
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

    def _draw_shadow(self, img: np.ndarray, a: Agent) -> None:
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

    def draw(self, t: int, full_masks: bool = False
             ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, Agent, float]],
                        dict[int, np.ndarray]]:
        """Frame ``t`` drawn far to near: (image (H, W, 3) uint8 RGB, draw-index map (H, W)
        uint16, [(draw index, agent, depth)], {draw index: unoccluded mask} when asked)."""
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
        drawn: list[tuple[int, Agent, float]] = []
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
        return image, idm, drawn, fulls
