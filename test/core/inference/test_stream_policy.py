"""StreamSession (size change, stamp back in time, stamp gap; IDs go on) and FrameSkipper."""
from __future__ import annotations

import logging

import numpy as np
import pytest

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
