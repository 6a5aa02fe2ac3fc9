"""The minimum-area filter judges the network's masks; refinement never drops a mask that passed
it (issue 39: small pedestrians were lost when refined masks were judged again)."""
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


def test_the_area_filter_judges_the_network_mask_not_the_refined_one(tiny_config):
    assert pedestrian_areas(tiny_config, 0, 120) == [140] * 4  # unrefined: passes
    assert pedestrian_areas(tiny_config, 6, 90) == [100] * 4  # refined, above the minimum
    # the network's 140 px mask passes 120; refinement makes it 100 px: published, refined
    # (between issues 27 and 39 the detection was dropped)
    assert pedestrian_areas(tiny_config, 6, 120) == [100] * 4
    assert pedestrian_areas(tiny_config, 6, 141) == []  # the network's mask is below: left out
