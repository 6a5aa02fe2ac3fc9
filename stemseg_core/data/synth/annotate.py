"""Annotation of a drawn frame: KITTI MOTS ids, ignore regions and track ids.

Visible parts smaller than ``min_area`` become ignore regions (class 10, id 10000), and so do
the farthest agents beyond ``max_objects``; an invisible agent is dropped for that frame.
Track ids are ``class * 1000 + k`` (k = 1, 2, ... per class, in order of first appearance).
A mixin of :class:`~stemseg_core.data.synth.generator.SequenceGenerator`.
"""
from __future__ import annotations

import numpy as np

from stemseg_core.data.synth.scene_types import IGNORE_CLASS, IGNORE_ID, Agent, Frame, FrameObject


class Annotator:
    """Turns the draw-index map into the instance map and the frame's objects."""

    def annotate(self, image: np.ndarray, idm: np.ndarray,
                 drawn: list[tuple[int, Agent, float]], fulls: dict[int, np.ndarray]) -> Frame:
        """Frame with its uint16 instance map (obj ids) from the drawn frame (see the module
        doc); updates the agents' ids and visibility."""
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
