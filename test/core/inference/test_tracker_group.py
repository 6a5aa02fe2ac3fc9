"""TrackerGroup: N camera streams on one network, each equal to a tracker of its own."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.stream_policy import StreamSession
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_core.inference.tracker_group import (
    MAX_STREAMS,
    TrackerGroup,
    check_stream_names,
)

#: Low cuts so that the random tiny model gives several instances per clip.
LOW = {"seediness_threshold": 0.05, "foreground_threshold": 0.05, "min_mask_area": 0}


def frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def tracker(path) -> StreamingTracker:
    tr = StreamingTracker.from_checkpoint(path, device="cpu", overrides=[
        "inference.backend=torch", "inference.precision=fp32"])
    tr.set_thresholds(**LOW)
    return tr


def alone(path, images: list[np.ndarray]) -> list:
    s = StreamSession(tracker(path))
    out = [r for i, im in enumerate(images) for r in s.push(im, i * 10**8, i)]
    return out + s.flush()


def key(results: list, ids=lambda i: i) -> list:
    return [(r.stamp, [(ids(i.track_id), i.class_id, round(i.score, 5), int(i.mask.sum()))
                       for i in r.instances]) for r in results]


def test_each_stream_equals_its_own_tracker_and_ids_are_unique(tiny_checkpoint):
    clips = {"a": frames(11, 1), "b": frames(11, 2), "c": frames(11, 1)}  # c repeats a
    group = TrackerGroup(tracker(tiny_checkpoint), list(clips))
    got = {n: [] for n in clips}
    for i in range(11):  # lockstep, as cameras due together
        for n, images in clips.items():
            got[n] += group.sessions[n].push(images[i], i * 10**8, i)
    for n in clips:
        got[n] += group.sessions[n].flush()
    ids = {n: {i.track_id for r in got[n] for i in r.instances} for n in clips}
    assert all(ids.values()), ids  # the low cuts give instances to compare
    assert not (ids["a"] & ids["b"]) and not (ids["a"] & ids["c"]) and not (ids["b"] & ids["c"])
    for k, n in enumerate(clips):
        want = alone(tiny_checkpoint, clips[n])
        assert [r.stamp for r in got[n]] == list(range(11))
        assert key(got[n]) == key(want, lambda t, k=k: (t - 1) * 3 + k + 1)
        assert all(group.camera_of(t) == (n, (t - 1) // 3 + 1) for t in ids[n])


def test_the_shared_runner_keeps_every_streams_frames(tiny_checkpoint):
    """N streams on one runner: its capacity is N x its own, so no frame is encoded twice (with
    the runner's own 2T, 3 streams in turn push each other's overlap frames out: 48 encodes)."""
    group = TrackerGroup(tracker(tiny_checkpoint), ["a", "b", "c"])
    for i in range(10):
        for k, n in enumerate(("a", "b", "c")):
            group.sessions[n].push(frames(10, 5 + k)[i], i * 10**8, i)
    runner = group.sessions["a"].tracker.runner
    assert runner is group.sessions["c"].tracker.runner  # one network
    assert runner.capacity == 3 * runner.base_capacity
    assert runner.encoded == 30 and runner.reused == 18  # 3 x (4 + 3 clips x 2 kept)


def test_one_stream_keeps_its_tracker_ids(tiny_checkpoint):
    images = frames(9, 3)
    group = TrackerGroup(tracker(tiny_checkpoint), ["front"])
    s = group.sessions["front"]
    got = [r for i, im in enumerate(images) for r in s.push(im, i * 10**8, i)] + s.flush()
    assert key(got) == key(alone(tiny_checkpoint, images))


def test_thresholds_reach_every_stream(tiny_checkpoint):
    group = TrackerGroup(tracker(tiny_checkpoint), ["a", "b"])
    group.set_thresholds(seediness_threshold=0.7)
    assert [s.tracker.seediness_threshold for s in group.sessions.values()] == [0.7, 0.7]
    assert group.sessions["a"].tracker.inner is not group.sessions["b"].tracker.inner


@pytest.mark.parametrize("names, fragment", [
    ([], "at least one"), (["a", "a"], "more than once"), (["a/b"], "'a/b'"),
    (["1cam"], "'1cam'"), ([""], "''"), ([f"c{i}" for i in range(MAX_STREAMS + 1)], "at most 8"),
    (["x" * 64], "at most 63")])
def test_bad_stream_names_are_refused_by_name(names, fragment):
    with pytest.raises(ValueError) as e:
        check_stream_names(names)
    assert fragment in str(e.value)


def test_good_stream_names_pass():
    assert check_stream_names(["front", "rear_left", "C2"]) == ("front", "rear_left", "C2")
