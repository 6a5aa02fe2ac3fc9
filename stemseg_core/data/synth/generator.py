"""One synthetic sequence: :class:`SequenceGenerator` simulates, renders and annotates it.

The world (:mod:`.world`), the renderer (:mod:`.render`) and the annotation (:mod:`.annotate`)
share one random stream; :func:`sequence_generator` seeds it from ``(seed, split, sequence)``.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from stemseg_core.data.synth.annotate import Annotator
from stemseg_core.data.synth.render import Renderer
from stemseg_core.data.synth.scene_types import CAR, PEDESTRIAN, Agent, Frame, SynthParams
from stemseg_core.data.synth.sensors import SensorSimulation
from stemseg_core.data.synth.world import WorldSimulation


class SequenceGenerator(WorldSimulation, Renderer, SensorSimulation, Annotator):
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
        self.agents: list[Agent] = []
        self.next_k = {CAR: 1, PEDESTRIAN: 1}
        for _ in range(self.target):
            self._spawn(initial=True)

    def render(self, t: int, full_masks: bool = False, depth: bool = False,
               lidar: bool = False) -> Frame:
        """Frame ``t`` (image, instance map, objects; depth image and LiDAR scan when asked,
        see :mod:`.sensors`) of the current world state."""
        image, idm, drawn, fulls = self.draw(t, full_masks)
        depth_m = self.depth_image(idm, drawn) if depth else None
        frame = self.annotate(image, idm, drawn, fulls)
        frame.depth = depth_m
        frame.points = self.lidar_scan() if lidar else None
        return frame

    def frames(self, full_masks: bool = False, depth: bool = False,
               lidar: bool = False) -> Iterator[Frame]:
        for t in range(self.p.frames):
            if t > 0:
                self._step(t)
            yield self.render(t, full_masks, depth, lidar)


def split_of(seq: int, num_sequences: int, val_fraction: float) -> str:
    n_val = int(round(num_sequences * val_fraction))
    if val_fraction > 0 and num_sequences >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, num_sequences - 1) if num_sequences > 1 else 0
    return "val" if seq >= num_sequences - n_val else "train"


def sequence_generator(seed: int, seq: int, split: str, params: SynthParams) -> SequenceGenerator:
    ss = np.random.SeedSequence([int(seed), 1 if split == "val" else 0, int(seq)])
    return SequenceGenerator(np.random.Generator(np.random.PCG64(ss)), params)
