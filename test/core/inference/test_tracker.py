"""StreamingTracker: every frame exactly once, in order; masks at input size; IDs; errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stemseg_core.checkpoint import CheckpointError
from stemseg_core.inference.tracker import ImageSizeChangedError, StreamingTracker

IMG_H, IMG_W = 40, 72  # not multiples of 32: exercises padding and mapping back


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (IMG_H, IMG_W, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def tracker(tiny_checkpoint):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    # random weights: accept every pixel so that instances exist
    tr.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0, max_instances=5)
    return tr


def run_stream(tr: StreamingTracker, images: list[np.ndarray]) -> list:
    out = []
    for i, img in enumerate(images):
        out += tr.push(img, stamp=1000 + i)
        assert tr.buffered <= tr.clip_length  # memory stays flat
    out += tr.flush()
    return out


@pytest.mark.parametrize("n", [1, 3, 4, 5, 14])  # 1, T-1, T, T+1, 3T+2 with T = 4
def test_every_frame_once_in_order(tracker, n):
    assert tracker.clip_length == 4
    out = run_stream(tracker, frames(n))
    assert [r.index for r in out] == list(range(n))
    assert [r.stamp for r in out] == [1000 + i for i in range(n)]
    assert tracker.flush() == []
    assert tracker.frames_pushed == n and tracker.pending == 0
    n_inst = 0
    for r in out:
        assert r.image_size == (IMG_H, IMG_W)
        if r.instances:
            stack = np.stack([i.mask for i in r.instances])
            assert stack.shape[1:] == (IMG_H, IMG_W) and stack.dtype == bool
            assert stack.sum(0).max() <= 1  # no overlaps
            assert all(i.mask.any() for i in r.instances)
            ids = [i.track_id for i in r.instances]
            assert len(set(ids)) == len(ids)
            assert all(i.class_name == tracker.class_names[i.class_id] for i in r.instances)
        n_inst += len(r.instances)
    assert n_inst > 0
    assert set(tracker.last_timings) >= {"model", "clustering", "stitching", "postprocess"}


def test_flush_then_continue_and_reset(tracker):
    imgs = frames(7)
    out = run_stream(tracker, imgs[:3])  # a partial first clip
    out += run_stream(tracker, imgs[3:])  # 2 kept + 2 new -> a clip, then 2 more -> flushed
    assert [r.index for r in out] == list(range(7))
    ids = {i.track_id for r in out for i in r.instances}
    assert min(ids) == 1 and max(ids) > 1
    tracker.reset()
    out2 = run_stream(tracker, imgs[:1])
    assert [r.index for r in out2] == [0]
    assert sorted(i.track_id for i in out2[0].instances)[0] == 1


def test_bad_input_raises(tracker):
    img = frames(1)[0]
    for bad in (img.astype(np.float32), img[..., 0], img[..., :2], np.zeros((0, 5, 3), np.uint8),
                img.tolist()):
        with pytest.raises(ValueError):
            tracker.push(bad, 0)
    tracker.push(img, 0)
    with pytest.raises(ImageSizeChangedError, match="reset"):
        tracker.push(np.zeros((IMG_H + 8, IMG_W, 3), np.uint8), 1)
    tracker.reset()
    assert tracker.push(np.zeros((IMG_H + 8, IMG_W, 3), np.uint8), 1) == []


def test_thresholds_live(tracker):
    with pytest.raises(ValueError):
        tracker.set_thresholds(mask_threshold=2.0)
    with pytest.raises(ValueError):
        tracker.set_thresholds(nonsense=1)
    with pytest.raises(ValueError):
        tracker.set_thresholds(classes=["truck"])
    tracker.set_thresholds(classes=["car"])
    out = run_stream(tracker, frames(4))
    assert all(i.class_name == "car" for r in out for i in r.instances)
    tracker.reset()
    tracker.set_thresholds(classes=[], min_mask_area=IMG_H * IMG_W + 1)
    out = run_stream(tracker, frames(2))
    assert len(out) == 2 and all(not r.instances for r in out)


def test_checkpoint_config_mismatch_is_clear(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="do not match"):
        StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu",
                                         overrides=["model.decoder.widths=[64,64,64,64]"])


class ColourBlobModel(nn.Module):
    """Fake network: every colour channel that is bright is one object; embedding = (x, y,
    10 * channel), seediness high on objects, semantic: red -> car, others -> pedestrian."""

    def __init__(self, stride: int = 4):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.stride = stride

    def forward(self, images):
        b, t, _, h, w = images.shape
        s = self.stride
        small = images[:, :, :, s // 2::s, s // 2::s]  # (B, T, 3, h/s, w/s), block centres
        hh, ww = small.shape[-2:]
        on = small > 128
        fg = on.any(dim=2)  # (B, T, h, w)
        chan = on.float().argmax(dim=2).float()
        ys, xs = torch.meshgrid(torch.arange(hh, dtype=torch.float32),
                                torch.arange(ww, dtype=torch.float32), indexing="ij")
        emb = torch.stack([xs.expand(b, t, hh, ww), ys.expand(b, t, hh, ww), 10 * chan], dim=1)
        prec = torch.ones_like(emb)
        prec[:, :2] = (s / 4) ** 2 / 64.0  # the same size in image pixels at any stride
        seed = fg.float() * 0.9
        sem = torch.zeros(b, 3, t, hh, ww)
        sem[:, 0] = torch.where(fg, -5.0, 5.0)
        sem[:, 1] = torch.where(chan == 0, 3.0, 0.0)
        sem[:, 2] = torch.where(chan == 0, 0.0, 3.0)
        return {"embeddings": emb, "precisions": prec, "seediness": seed, "semantic": sem}


def scene(i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
    truth = {}
    objs = [("red", 0, 4 + 2 * i, 4, range(0, 16)), ("green", 1, 50, 20, range(0, 8)),
            ("blue", 2, 50, 20, range(10, 16))]
    for name, c, x, y, alive in objs:
        if i in alive:
            img[y:y + 12, x:x + 12, c] = 255
            m = np.zeros((IMG_H, IMG_W), bool)
            m[y:y + 12, x:x + 12] = True
            truth[name] = m
    return img, truth


def run_scene(tr: StreamingTracker, n: int) -> tuple[list, list[dict[str, np.ndarray]]]:
    """Push scene(0..n-1) through the tracker; (results, ground-truth masks per frame)."""
    out, truths = [], []
    for i in range(n):
        img, truth = scene(i)
        truths.append(truth)
        out += tr.push(img, i)
    return out + tr.flush(), truths


@pytest.mark.parametrize("stride,min_iou", [(4, 0.6), (2, 0.95)])
def test_tracks_follow_objects_with_a_fake_model(tiny_config, stride, min_iou):
    """Any output stride: masks are mapped back to the image (finer at stride 2)."""
    out, truths = run_scene(StreamingTracker(ColourBlobModel(stride), tiny_config,
                                             device="cpu"), 16)
    assert [r.index for r in out] == list(range(16))
    ids: dict[str, set[int]] = {"red": set(), "green": set(), "blue": set()}
    for r, truth in zip(out, truths):
        assert len(r.instances) == len(truth)
        for name, m in truth.items():
            best = max(r.instances, key=lambda inst: (inst.mask & m).sum())
            iou = (best.mask & m).sum() / (best.mask | m).sum()
            assert iou > min_iou, (r.index, name, iou)
            ids[name].add(best.track_id)
            assert best.class_name == ("car" if name == "red" else "pedestrian")
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len(set.union(*ids.values())) == 3  # the blue object got a new ID


def test_failed_clip_drops_its_frames_and_never_reuses_ids(tiny_checkpoint):
    import numpy as np

    from stemseg_core.inference.tracker import StreamingTracker

    trk = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    trk.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (40, 72, 3), dtype=np.uint8) for _ in range(12)]
    out = [r for f in frames[:4] for r in trk.push(f, 0)]
    used = {i.track_id for r in out for i in r.instances}
    real_forward = trk._forward  # the one network call (whatever the backend)

    def boom(*a, **k):
        raise RuntimeError("simulated CUDA out of memory")

    trk._forward = boom
    got_error = False
    for f in frames[4:6]:
        try:
            trk.push(f, 0)
        except RuntimeError:
            got_error = True
    assert got_error
    assert trk.pending == 0  # the failed clip's frames are dropped, not re-output later
    trk._forward = real_forward
    later = [r for f in frames[6:] for r in trk.push(f, 0)] + trk.flush()
    assert len(later) == 6  # the stream goes on: every later frame is output once
    new_ids = {i.track_id for r in later for i in r.instances}
    assert not (new_ids & used)


def test_small_masks_are_left_out_of_the_output_but_keep_the_track(tiny_config):
    # One red object, big (12x12) except in frames 4..9 where it is 4x4 (one low-res cell).
    # With T=4 / overlap 2, clips 4-7 and 6-9 see it only small: were small masks dropped
    # before linking, frames 10.. would start a new track.
    def image(i):
        img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
        if 4 <= i <= 9:
            x = 4 * (1 + (4 + 2 * i) // 4)
            img[8:12, x:x + 4, 0] = 255
        else:
            img[4:16, 4 + 2 * i:16 + 2 * i, 0] = 255
        return img

    def run(min_area):
        tr = StreamingTracker(ColourBlobModel(), tiny_config, device="cpu")
        tr.set_thresholds(min_mask_area=min_area)
        out = [r for i in range(16) for r in tr.push(image(i), i)] + tr.flush()
        return [[(inst.track_id, int(inst.mask.sum())) for inst in r.instances] for r in out]

    everything = run(0)
    assert all(len(f) == 1 for f in everything)  # the small object is found in every frame
    assert all(f[0][1] < 60 for f in everything[4:10])
    assert all(f[0][1] >= 100 for f in everything[:4] + everything[10:])
    filtered = run(60)
    assert all(f == [] for f in filtered[4:10])
    assert {f[0][0] for f in filtered[:4] + filtered[10:]} == {1}  # one track throughout


def test_per_class_min_mask_area_overrides_the_global_one(tiny_config):
    # scene(0): a red car and a green pedestrian, 12x12 px each.
    def run(per_class, global_area):
        tiny_config.inference.min_mask_area_per_class = per_class
        tr = StreamingTracker(ColourBlobModel(), tiny_config, device="cpu")
        tr.set_thresholds(min_mask_area=global_area)
        out = [r for i in range(4) for r in tr.push(scene(i)[0], i)] + tr.flush()
        return [sorted(inst.class_name for inst in r.instances) for r in out]

    assert run({}, 0) == [["car", "pedestrian"]] * 4
    assert run({"pedestrian": 1000}, 0) == [["car"]] * 4
    assert run({"car": 1000}, 0) == [["pedestrian"]] * 4
    # classes without an entry follow the (live) global threshold
    assert run({"pedestrian": 100}, 1000) == [["pedestrian"]] * 4
    assert run({"pedestrian": 1000}, 100) == [["car"]] * 4


def test_per_class_seediness_threshold(tiny_config):
    # ColourBlobModel's seediness is 0.9 on every object: a class is found iff its threshold
    # (its own entry, else the global one) is <= 0.9.
    def run(per_class, global_thr):
        tiny_config.inference.seediness_threshold = global_thr
        tiny_config.inference.seediness_threshold_per_class = per_class
        tr = StreamingTracker(ColourBlobModel(), tiny_config, device="cpu")
        out = [r for i in range(4) for r in tr.push(scene(i)[0], i)] + tr.flush()
        return [sorted(inst.class_name for inst in r.instances) for r in out]

    assert run({}, 0.95) == [[]] * 4
    assert run({"pedestrian": 0.8}, 0.95) == [["pedestrian"]] * 4
    assert run({"car": 0.8, "pedestrian": 0.8}, 0.95) == [["car", "pedestrian"]] * 4
    assert run({"car": 0.95}, 0.5) == [["pedestrian"]] * 4


def test_per_class_thresholds_are_live(tiny_config):
    # Same scene as above, one tracker whose per-class maps change between streams.
    tr = StreamingTracker(ColourBlobModel(), tiny_config, device="cpu")

    def run(**thresholds):
        tr.set_thresholds(**thresholds)
        out = [r for i in range(4) for r in tr.push(scene(i)[0], i)] + tr.flush()
        tr.reset()
        return [sorted(inst.class_name for inst in r.instances) for r in out]

    assert run(seediness_threshold=1) == [[]] * 4  # an int for a float threshold
    assert tr.seediness_threshold == 1.0 and isinstance(tr.seediness_threshold, float)
    assert run(seediness_threshold_per_class={"pedestrian": 0.8}) == [["pedestrian"]] * 4
    assert tr.seediness_threshold_per_class == {"pedestrian": 0.8}
    assert run(seediness_threshold=0, min_mask_area_per_class={"car": 1000}) == [
        ["pedestrian"]] * 4
    assert run(seediness_threshold_per_class={}, min_mask_area_per_class="{pedestrian: 1000}",
               ) == [["car"]] * 4
    assert tr.min_mask_area_per_class == {"pedestrian": 1000}
    # all or nothing: one bad value leaves every threshold as it was
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['truck'\]"):
        tr.set_thresholds(mask_threshold=0.9, min_mask_area_per_class={"truck": 5})
    with pytest.raises(ValueError, match=r"values must be \{class name: a number in \[0, 1\]"):
        tr.set_thresholds(mask_threshold=0.9, seediness_threshold_per_class={"car": 2})
    assert tr.mask_threshold == tiny_config.inference.mask_threshold
    assert tr.min_mask_area_per_class == {"pedestrian": 1000}
    assert tr.seediness_threshold_per_class == {}


@pytest.mark.parametrize("gap,expected_ids", [(0, {1, 2}), (8, {1}), (6, {1, 2})])
def test_relink_returns_the_id_of_an_object_missed_for_a_few_clips(tiny_config, gap,
                                                                   expected_ids):
    # A red car moving 2 px/frame is invisible in frames 6..11 (two whole clips): last seen at
    # frame 5, back at frame 12 where its velocity puts it (a 7-frame gap).
    def image(i):
        img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
        if not 6 <= i <= 11:
            img[4:16, 4 + 2 * i:16 + 2 * i, 0] = 255
        return img

    tiny_config.inference.relink_max_gap = gap
    tiny_config.inference.relink_max_distance = 0.5
    # stride 2: the 2 px/frame motion shows in the boxes of every frame
    tr = StreamingTracker(ColourBlobModel(stride=2), tiny_config, device="cpu")
    out = [r for i in range(16) for r in tr.push(image(i), i)] + tr.flush()
    assert [len(r.instances) for r in out] == [1] * 6 + [0] * 6 + [1] * 4
    assert {inst.track_id for r in out for inst in r.instances} == expected_ids


@pytest.mark.parametrize("classes", [[], ["pedestrian"], "per-class radius"])
def test_mask_refinement_snaps_blocky_masks_to_the_objects(tiny_config, classes):
    """At stride 4 the fake network's masks are 4x4 blocks off the objects' edges; the guided
    filter (inference.mask_refinement_*) moves them onto the colour edges, class by class."""
    per_class = classes == "per-class radius"

    def ious(radius):
        tiny_config.inference.mask_refinement_radius = 2 if per_class and radius else radius
        tiny_config.inference.mask_refinement_radius_per_class = (
            {"pedestrian": radius} if per_class and radius else {})
        tiny_config.inference.mask_refinement_classes = [] if per_class else classes
        out, truths = run_scene(StreamingTracker(ColourBlobModel(4), tiny_config, device="cpu"),
                                8)
        got: dict[str, list[float]] = {"car": [], "pedestrian": []}
        for r, truth in zip(out, truths):
            assert len(r.instances) == len(truth)
            for m in truth.values():
                best = max(r.instances, key=lambda inst: (inst.mask & m).sum())
                got[best.class_name].append((best.mask & m).sum() / (best.mask | m).sum())
        return {k: float(np.mean(v)) for k, v in got.items()}

    blocky, refined = ious(0), ious(6)  # blocks are up to 2 px off: the radius must reach
    assert blocky["car"] < 0.9 and blocky["pedestrian"] < 0.8
    assert refined["pedestrian"] > 0.99
    if per_class:  # cars at radius 2: better, not snapped (a 2 px offset needs more)
        assert blocky["car"] < refined["car"] < 0.95
    elif classes:
        assert refined["car"] == blocky["car"]  # cars not listed: untouched
    else:
        assert refined["car"] > 0.99


def test_a_runner_per_shape_is_kept_so_alternating_shapes_never_rebuild(tracker, monkeypatch):
    """Frames alternating between the (at most 3) model input shapes of a stream: each shape's
    runner is built once and kept (LRU, MAX_RUNNERS); a fourth shape evicts the oldest."""
    from stemseg_core.backends import runner as runner_mod
    from stemseg_core.inference.tracker import MAX_RUNNERS

    built = []
    real = runner_mod.build_runner

    def counting(model, cfg, device, frame_shape, clip_length):
        built.append(tuple(frame_shape))
        return real(model, cfg, device, frame_shape, clip_length)

    monkeypatch.setattr(runner_mod, "build_runner", counting)
    sizes = [(40, 72), (64, 128), (96, 160)] * 3  # padded 64x96, 64x128, 96x160
    for h, w in sizes:
        tracker.reset()
        rng = np.random.default_rng(h)
        for i in range(tracker.clip_length):
            tracker.push(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), i)
    assert MAX_RUNNERS == 3
    assert built == [(3, 64, 96), (3, 64, 128), (3, 96, 160)]
    assert tracker.runner_shapes == [(3, 64, 96), (3, 64, 128), (3, 96, 160)]
    tracker.reset()
    tracker.push(np.zeros((130, 40, 3), np.uint8), 0)
    tracker.flush()  # a fourth shape: built, the least recently used one dropped
    assert tracker.runner_shapes == [(3, 64, 128), (3, 96, 160), (3, 160, 64)]
