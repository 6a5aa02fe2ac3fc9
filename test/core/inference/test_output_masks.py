"""Masks upsampled per instance inside their boxes equal the whole-frame path (issue 40)."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.mask_refinement import refine_labels
from stemseg_core.inference.output_masks import (
    ClipMasks,
    GridSampler,
    paste,
    refine_frame,
    upsample_frame,
)
from stemseg_core.inference.preprocess import Geometry, geometry, upsample_labels
from stemseg_core.inference.stitching import instance_boxes, iou_from_labels


def blobs(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Label maps (0 = none, k + 1 = instance k) of n random rectangles, later ones on top."""
    lab = np.zeros(shape, np.int32)
    for k in range(n):
        for t in range(shape[0]):
            if rng.random() < 0.15:
                continue  # absent from this frame
            h, w = rng.integers(1, max(2, shape[1] // 2)), rng.integers(1, max(2, shape[2] // 2))
            y, x = rng.integers(0, shape[1] - h + 1), rng.integers(0, shape[2] - w + 1)
            lab[t, y:y + h, x:x + w] = k + 1
    return lab


GEOMETRIES = [geometry(720, 1280, 192, 640), geometry(192, 640), geometry(1080, 1920, 192, 640),
              geometry(375, 1242, 0, 0), geometry(100, 90, 64, 0)]


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: "x".join(map(str, g.image_size)))
@pytest.mark.parametrize("stride", [4, 2])
def test_boxed_upsampling_equals_the_whole_frame(geo: Geometry, stride: int):
    rng = np.random.default_rng(stride + geo.image_size[1])
    hp, wp = geo.padded_size
    grid = blobs(rng, (3, hp // stride, wp // stride), 9)
    full = upsample_labels(grid - 1, geo) + 1
    sampler = GridSampler.for_grid(grid.shape[1:], geo)
    masks = ClipMasks([upsample_frame(g, sampler) for g in grid], geo.image_size)
    for t in range(3):
        np.testing.assert_array_equal(paste(masks.frames[t], geo.image_size), full[t])
    assert (masks.areas(1, 9) == np.bincount(full[1].ravel(), minlength=10)[1:]).all()
    np.testing.assert_array_equal(masks.boxes(9), instance_boxes(full, 9))
    # IoU of the tubes over 2 frames, previous clip's instances vs a new clip's
    other = blobs(rng, grid.shape, 7)
    new = ClipMasks([upsample_frame(g, sampler) for g in other], geo.image_size)
    full_new = upsample_labels(other - 1, geo) + 1
    expect = iou_from_labels(full[1:], 9, full_new[:2], 7)
    np.testing.assert_array_equal(masks[1:].iou_with(new[:2], 9, 7), expect)
    assert expect.max() > 0  # the case has overlapping instances


def test_refinement_at_the_output_size_equals_refine_labels():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    image[10:40, 20:50] = (200, 30, 30)  # an object with edges to snap to
    lab = blobs(rng, (1, 60, 90), 6)[0]
    lab[12:38, 22:48] = 7  # blocky mask of the object (instance 6)
    pieces = upsample_frame(lab, GridSampler((60, 90), (60, 90)))
    radii = {0: 2, 3: 3, 6: 4, 2: 1}
    identity = GridSampler((60, 90), (60, 90))
    got = refine_frame(image, lab, pieces, radii, 1e-3, identity, identity)
    expect = refine_labels(image, lab, radii, 1e-3)
    np.testing.assert_array_equal(paste(got, (60, 90)), expect)
    assert (expect != lab).sum() > 20  # refinement changed pixels here


def test_refinement_at_a_capped_size_follows_the_image_edges():
    # a 48x96 frame's object (rows 10..29, cols 30..69) in a 4x larger output
    image = np.zeros((48, 96, 3), np.uint8)
    image[10:30, 30:70] = 255
    grid = np.zeros((12, 24), np.int32)
    grid[2:8, 7:18] = 1  # the network's blocky mask, stride 4 of the refinement image
    out = (192, 384)
    geo_out = Geometry(out, (48, 96), (48, 96))
    pieces = upsample_frame(grid, GridSampler.for_grid(grid.shape, geo_out))
    got = refine_frame(image, grid, pieces, {0: 3}, 1e-3,
                       GridSampler.for_grid(grid.shape, Geometry((48, 96), (48, 96), (48, 96))),
                       GridSampler((48, 96), out))
    mask = paste(got, out) == 1
    truth = np.zeros(out, bool)
    truth[40:120, 120:280] = True
    before = paste(pieces, out) == 1

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return float((a & b).sum() / (a | b).sum())

    # what refining at the small size gives, scaled up: the soft upsampling keeps its edges
    small = refine_labels(image, paste(upsample_frame(grid, GridSampler.for_grid(
        grid.shape, Geometry((48, 96), (48, 96), (48, 96)))), (48, 96)), {0: 3}, 1e-3)
    scaled = np.kron(small, np.ones((4, 4), np.int32)) == 1
    assert iou(mask, scaled) > 0.95  # (a border band differs: bilinear vs blocks)
    assert iou(mask, truth) > iou(before, truth) + 0.08


@pytest.mark.parametrize("radius", [0, 2])
def test_tracker_results_at_a_larger_size_match_upscaled_results(tiny_config, radius):
    """push(image, size=) of a half-size decode: masks made at the camera's size directly match
    the small results resized (IDs equal, IoU >= 0.9), with boxes equal to the masks'."""
    from test_tracker import ColourBlobModel, scene

    from stemseg_core.inference.stream_policy import results_at
    from stemseg_core.inference.tracker import StreamingTracker

    tiny_config.inference.mask_refinement_radius = radius
    tiny_config.inference.min_mask_area = 1
    big, small = (StreamingTracker(ColourBlobModel(4), tiny_config, device="cpu")
                  for _ in range(2))
    got, ref = [], []
    for i in range(9):
        img, _ = scene(i)
        got += big.push(img, i, size=(80, 144))
        ref += results_at(small.push(img, i), (80, 144))
    got, ref = got + big.flush(), results_at(ref + small.flush(), (80, 144))
    assert [r.index for r in got] == [r.index for r in ref] == list(range(9))
    n = 0
    for a, b in zip(got, ref):
        assert a.image_size == (80, 144)
        assert [i.track_id for i in a.instances] == [i.track_id for i in b.instances]
        for x, y in zip(a.instances, b.instances):
            assert x.mask.shape == (80, 144)
            assert (x.mask & y.mask).sum() / (x.mask | y.mask).sum() >= 0.9
            ys, xs = np.nonzero(x.mask)
            assert x.bbox() == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
            n += 1
    assert n >= 15
