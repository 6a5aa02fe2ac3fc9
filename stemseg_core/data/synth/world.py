"""The simulated street: ego motion, static world layout, agents spawning and moving.

A mixin of :class:`~stemseg_core.data.synth.generator.SequenceGenerator`; it shares the
generator's random stream with the renderer, so the order of draws defines the output.
"""
from __future__ import annotations

import math

import numpy as np

from stemseg_core.data.synth.scene_types import CAR, FPS, PEDESTRIAN, Agent

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


class WorldSimulation:
    """World layout and agent motion (uses ``self.rng``, ``self.p``, ``self.ego_z``, ...)."""

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

    def _new_car(self, r: np.random.Generator, lane: float, z: float, yaw: float,
                 speed: float) -> Agent:
        van = r.random() < 0.15
        base = CAR_PALETTE[r.integers(len(CAR_PALETTE))]
        if r.random() < 0.7:
            base = base + r.uniform(-12, 12, 3)
        length = r.uniform(4.8, 5.6) if van else r.uniform(3.8, 4.8)
        return Agent(CAR, lane, z, yaw, speed, length, r.uniform(1.65, 1.95),
                      r.uniform(1.9, 2.3) if van else r.uniform(1.35, 1.65),
                      [np.clip(base, 0, 255)], lane=lane, van=van)

    def _new_ped(self, r: np.random.Generator, x: float, z: float, yaw: float) -> Agent:
        colors = [SHIRTS[r.integers(len(SHIRTS))] * r.uniform(0.8, 1.1),
                  PANTS[r.integers(len(PANTS))] * r.uniform(0.8, 1.2),
                  SKIN[r.integers(len(SKIN))], np.array([30, 25, 20]) * r.uniform(0.7, 3)]
        return Agent(PEDESTRIAN, x, z, yaw, r.uniform(0.8, 1.7), 0.4, 0.5, r.uniform(1.5, 1.92),
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
