"""StreamSession (size change, stamp back in time, stamp gap; IDs go on) and FrameSkipper."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemseg_core.inference.stream_policy import FrameSkipper, StreamSession
from stemseg_core.inference.tracker import StreamingTracker

SEC = 1_000_000_000


def moving_boxes(n: int, h: int = 40, w: int = 72) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.full((h, w, 3), (40, 60, 80), np.uint8)
        img[5:20, 2 + 2 * i:16 + 2 * i] = (220, 30, 30)
        img[22:38, w - 20 - i:w - 4 - i] = (30, 200, 40)
        out.append(img)
    return out


@pytest.fixture
def tracker(tiny_checkpoint):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    tr.set_thresholds(seediness_threshold=0.0, foreground_threshold=0.0, max_instances=5)
    return tr


def ids(results) -> set[int]:
    return {i.track_id for r in results for i in r.instances}


def test_tracker_reset_keep_ids(tracker):
    first = []
    for i, f in enumerate(moving_boxes(6)):
        first += tracker.push(f, i)
    first += tracker.flush()
    assert ids(first), "no instance: the test proves nothing"
    tracker.reset(keep_ids=True)
    again = []
    for i, f in enumerate(moving_boxes(4)):
        again += tracker.push(f, i)
    assert ids(again) and min(ids(again)) == max(ids(first)) + 1
    tracker.reset()  # a fresh stream: IDs from 1
    fresh = []
    for i, f in enumerate(moving_boxes(4)):
        fresh += tracker.push(f, i)
    assert min(ids(fresh)) == 1


def test_size_change_back_in_time_and_gap_start_new_sequences(tracker, caplog):
    s = StreamSession(tracker, gap_reset_sec=1.0)
    frames = moving_boxes(5)
    out = []
    for i, f in enumerate(frames):  # 10 Hz; T=4, Tc=2: frame 4 is buffered, not final
        out += s.push(f, 100 * SEC + i * SEC // 10, meta=i)
    assert [r.stamp for r in out] == [0, 1, 2, 3] and tracker.pending == 1
    before = ids(out)
    assert before
    caplog.set_level(logging.INFO, "stemseg_core.inference.stream_policy")
    big = np.zeros((48, 80, 3), np.uint8)
    big[:40, :72] = frames[0]
    got = s.push(big, 101 * SEC, meta="big")  # size change: frame 4 finalised first
    assert [r.stamp for r in got] == [4] and s.resets == 1
    assert "image size changed from 72x40 to 80x48" in caplog.text
    got += s.push(big, 50 * SEC, meta="back")  # back in time
    assert s.resets == 2 and "jumped back in time by 51.000 s" in caplog.text
    got += s.push(big, 50 * SEC + SEC // 2, meta="near")  # 0.5 s < gap_reset_sec
    assert s.resets == 2
    got += s.push(big, 52 * SEC, meta="late")  # 1.5 s gap
    assert s.resets == 3 and "gap of 1.500 s" in caplog.text
    got += s.flush()
    assert [r.stamp for r in got] == [4, "big", "back", "near", "late"]
    after = ids(got[1:])
    assert after and min(after) > max(before), "IDs were reused after a reset"


def test_gaps_the_caller_made_do_not_reset(tracker):
    s = StreamSession(tracker, gap_reset_sec=1.0)
    frames = moving_boxes(4)
    # The caller skipped 5 s of frames between these two; the camera itself had no gap.
    s.push(frames[0], 10 * SEC)
    s.push(frames[1], 15 * SEC, prev_stamp_ns=15 * SEC - SEC // 15)
    assert s.resets == 0
    # A gap in the camera's own stamps still resets.
    s.push(frames[2], 20 * SEC, prev_stamp_ns=15 * SEC + SEC // 15 + 2 * SEC)
    assert s.resets == 1


def kept(stamps_s, rate) -> list[float]:
    sk = FrameSkipper()
    return [t for t in stamps_s if sk.keep(int(round(t * SEC)), rate)]


def test_frame_skipper_keeps_frames_evenly():
    cam = [i / 30 for i in range(90)]  # 30 Hz for 3 s
    assert kept(cam, 0) == cam
    assert kept(cam, 10) == cam[::3]
    got = kept([i / 15 for i in range(150)], 6.0)  # 15 Hz -> at most 6 Hz
    steps = np.diff(got)
    assert 59 <= len(got) <= 61 and steps.min() >= 2 / 15 - 1e-6 and steps.max() <= 3 / 15 + 1e-6
    # camera jitter of +-5 ms does not change the pattern
    rng = np.random.default_rng(0)
    jitter = [t + rng.uniform(-0.005, 0.005) for t in cam]
    assert len(kept(jitter, 10)) == 30


def test_frame_skipper_starts_over_after_a_jump_or_a_pause():
    sk = FrameSkipper()
    assert [sk.keep(t * SEC // 10, 2) for t in range(6)] == [1, 0, 0, 0, 0, 1]
    assert sk.keep(0, 2)  # back in time: a new grid
    assert sk.keep(100 * SEC, 2)  # a pause: a new grid
    assert not sk.keep(100 * SEC + SEC // 10, 2)


def test_training_geometry_warning(tiny_config):
    import dataclasses

    from stemseg_core.inference.stream_policy import training_geometry_warning

    cfg = dataclasses.replace(tiny_config, data=dataclasses.replace(
        tiny_config.data, height=192, width=640))
    assert training_geometry_warning(cfg, 192, 640) is None
    assert training_geometry_warning(cfg, 375, 1242) is None  # full KITTI frames: same aspect
    msg = training_geometry_warning(cfg, 720, 1280)
    assert "trained on 640x192 crops" in msg and "aspect 1.78" in msg
    assert "input_roi, e.g. [0, 168, 1280, 384]" in msg


# --------------------------------------------------------------------------------------------
# Bounded model input shapes (issue 35)


def test_shape_budget_adds_two_shapes_then_resizes_into_the_closest(tiny_config, caplog):
    from stemseg_core.inference.stream_policy import MAX_EXTRA_SHAPES, ShapeBudget

    b = ShapeBudget(tiny_config)  # trained on 64x128, input.min_side/max_side 0 (native size)
    assert b.shapes == {(64, 128): (64, 128)} and b.limit == 1 + MAX_EXTRA_SHAPES == 3
    img = np.zeros((40, 72, 3), np.uint8)
    assert b.fit(img, (40, 72)) is img  # padded 64x96: the first extra shape
    assert b.fit(np.zeros((48, 80, 3), np.uint8), (48, 80)).shape == (48, 80, 3)  # same 64x96
    assert b.fit(np.zeros((100, 200, 3), np.uint8), (100, 200)).shape == (100, 200, 3)
    assert set(b.shapes) == {(64, 128), (64, 96), (128, 224)} and b.resized == 0
    caplog.set_level(logging.WARNING, "stemseg_core.inference.stream_policy")
    wide = b.fit(np.zeros((30, 300, 3), np.uint8), (30, 300))  # aspect 10: closest is 2:1
    assert wide.shape == (64, 128, 3) and b.resized == 1
    assert "300x30 images would need a new model input shape 320x32" in caplog.text
    tall = b.fit(np.zeros((300, 90, 3), np.uint8), (300, 90))  # aspect 0.3: 72/40 is closest
    assert tall.shape == (40, 72, 3) and b.resized == 2 and len(b.shapes) == 3


@settings(max_examples=300, deadline=None, database=None)
@given(min_side=st.integers(0, 800), max_side=st.integers(0, 2000),
       h=st.integers(1, 4000), w=st.integers(1, 4000))
def test_a_shapes_model_size_is_a_fixed_point_of_the_resize(min_side, max_side, h, w):
    """An image resized to a shape's stored (nh, nw) is not resized again by the tracker, so it
    lands on that very shape (no build)."""
    from stemseg_core.inference.preprocess import geometry

    g = geometry(h, w, min_side, max_side)
    again = geometry(*g.resized_size, min_side, max_side)
    assert again.resized_size == g.resized_size and again.padded_size == g.padded_size


def test_sizes_changing_every_frame_use_a_bounded_set_of_shapes(tracker):
    """A publisher changing the image size every frame: the tracker sees at most the training
    shape + MAX_EXTRA_SHAPES padded shapes, and every result comes back at its frame's size."""
    from stemseg_core.inference.stream_policy import MAX_EXTRA_SHAPES

    s = StreamSession(tracker)
    sizes = [(40, 72), (100, 200), (64, 128), (33, 97), (70, 50), (90, 300), (41, 73), (64, 64)]
    shapes, out = set(), []
    for i, (h, w) in enumerate(sizes * 2):
        img = np.full((h, w, 3), 60, np.uint8)
        img[h // 4:h // 2, w // 4:w // 2] = (220, 30, 30)
        out += s.push(img, (10 + i) * SEC, meta=(h, w))
        shapes.add(tracker.input_geometry.padded_size)
    out += s.flush()
    assert len(shapes) <= 1 + MAX_EXTRA_SHAPES, shapes
    # padded: 64x96 (extra 1), 128x224 (extra 2), 64x128 (trained), 64x128, then 96x64,
    # 96x320 and 64x64 have no room: resized, twice each
    assert s.shapes.resized == 6
    assert len(out) == 16 and all(r.image_size == r.stamp for r in out)
    assert all(i.mask.shape == r.stamp for r in out for i in r.instances)
    assert any(r.instances for r in out), "no instance: the mask sizes prove nothing"


def test_results_come_back_at_the_frames_own_size(tracker):
    """A frame decoded at half size (a reduced JPEG decode) with size= its camera size."""
    full = moving_boxes(5, 80, 144)
    s, out = StreamSession(tracker), []
    for i, f in enumerate(full):
        half = f[::2, ::2].copy()
        out += s.push(half, (10 + i) * SEC, meta=i, size=(80, 144))
    out += s.flush()
    assert [r.image_size for r in out] == [(80, 144)] * 5
    assert all(i.mask.shape == (80, 144) for r in out for i in r.instances)
    assert any(r.instances for r in out)
