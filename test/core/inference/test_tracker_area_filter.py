"""The minimum-area filter applies to the masks as published: after mask refinement too."""
from __future__ import annotations

import numpy as np
from test_tracker import IMG_H, IMG_W, ColourBlobModel

from stemseg_core.inference.tracker import StreamingTracker


def pedestrian_areas(tiny_config, radius: int, min_area: int) -> list[int]:
    """Areas published for a 10x10 green square (a pedestrian to the fake network), whose
    stride-4 block mask covers 140 px and the refined one its 100 px."""
    tiny_config.inference.mask_refinement_radius = radius
    tiny_config.inference.min_mask_area_per_class = {"pedestrian": min_area}
    tr = StreamingTracker(ColourBlobModel(4), tiny_config, device="cpu")
    img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
    img[22:32, 50:60, 1] = 255
    out = [r for i in range(4) for r in tr.push(img, i)] + tr.flush()
    return [int(i.mask.sum()) for r in out for i in r.instances]


def test_refined_masks_below_the_minimum_area_are_left_out(tiny_config):
    assert pedestrian_areas(tiny_config, 0, 120) == [140] * 4  # unrefined: passes
    assert pedestrian_areas(tiny_config, 6, 90) == [100] * 4  # refined, still large enough
    assert pedestrian_areas(tiny_config, 6, 120) == []  # refined below 120: not published
