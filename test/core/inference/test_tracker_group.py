"""TrackerGroup: N camera streams on one network, each equal to a tracker of its own."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.stream_policy import StreamSession
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_core.inference.tracker_group import (
    MAX_STREAMS,
    StreamFrame,
    TrackerGroup,
    check_stream_names,
)

#: Low cuts so that the random tiny model gives several instances per clip.
LOW = {"seediness_threshold": 0.05, "foreground_threshold": 0.05, "min_mask_area": 0}


def frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def tracker(path, backend: str = "torch") -> StreamingTracker:
    tr = StreamingTracker.from_checkpoint(path, device="cpu", overrides=[
        f"inference.backend={backend}", "inference.precision=fp32",
        f"inference.engine_cache_dir={path.parent / 'engines'}"])
    tr.set_thresholds(**LOW)
    return tr


def alone(path, images: list[np.ndarray], flip: bool = False, backend: str = "torch") -> list:
    tr = tracker(path, backend)
    tr.flip_test = flip
    s = StreamSession(tr)
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


def stepped(group: TrackerGroup, clips: dict[str, list[np.ndarray]]) -> dict[str, list]:
    """Every stream's frame i in one TrackerGroup.step, i = 0, 1, ...; then each flushed."""
    got = {n: [] for n in clips}
    for i in range(len(next(iter(clips.values())))):
        steps = group.step([StreamFrame(n, images[i], i * 10**8, i)
                            for n, images in clips.items()])
        assert all(st.error is None for st in steps.values()), steps
        for n, st in steps.items():
            got[n] += st.results
    for n in clips:
        got[n] += group.sessions[n].flush()
    return got


@pytest.mark.parametrize("backend, flip", [
    ("torch", False), ("torch", True),
    pytest.param("openvino", False, marks=pytest.mark.slow)])  # ~1 min: builds its graphs
def test_a_batched_step_equals_pushing_the_streams_one_by_one(tiny_checkpoint, backend, flip):
    """The clips due in a step go through one network call; every stream's results equal its
    own tracker's (scores to 5 places, mask areas), with the flip test too: these encoders
    give a frame the same features in any batch."""
    clips = {"a": frames(11, 1), "b": frames(11, 2), "c": frames(11, 1)}  # c repeats a
    first = tracker(tiny_checkpoint, backend)
    first.flip_test = flip
    group = TrackerGroup(first, list(clips))
    got = stepped(group, clips)
    for k, n in enumerate(clips):
        want = alone(tiny_checkpoint, clips[n], flip, backend)
        assert [r.stamp for r in got[n]] == list(range(11))
        assert key(got[n]) == key(want, lambda t, k=k: (t - 1) * 3 + k + 1)
    assert all(i.instances for i in got["b"][:4])  # the low cuts give instances to compare
    runner = group.sessions["a"].tracker.runner
    # c's frames equal a's: encoded once (11 + 11 frames, each mirrored with the flip test)
    assert runner.encoded == (2 if flip else 1) * 22


def test_the_encoder_runs_once_per_step_with_the_frames_of_every_due_clip(tiny_checkpoint):
    """A counting backend: each step with due clips makes ONE encoder call holding the new
    frames of all of them (T = 4, overlap 2: the first clips 4 frames each, then 2 each),
    steps without a due clip none; then one decoder call per clip."""
    clips = {"a": frames(9, 4), "b": frames(9, 5), "c": frames(9, 6)}
    group = TrackerGroup(tracker(tiny_checkpoint), list(clips))
    group.sessions["a"].tracker.warmup()  # builds the shared runner (its features dropped)
    backend = group.sessions["a"].tracker.runner.backend
    calls: list[tuple[int, str]] = []
    encode, decode = backend.encode, backend.decode
    backend.encode = lambda x: (calls.append((len(x), "encode")), encode(x))[1]
    backend.decode = lambda f: (calls.append((len(f[0]), "decode")), decode(f))[1]
    for i in range(9):
        calls.append((i, "step"))
        group.step([StreamFrame(n, images[i], i * 10**8, i) for n, images in clips.items()])
    dec = [(4, "decode")] * 3  # every clip 4 frames long (2 of them the last clip's)
    assert calls == [(0, "step"), (1, "step"), (2, "step"), (3, "step"), (12, "encode"), *dec,
                     (4, "step"), (5, "step"), (6, "encode"), *dec, (6, "step"),
                     (7, "step"), (6, "encode"), *dec, (8, "step")]


def test_a_failure_in_a_step_stays_with_its_streams(tiny_checkpoint):
    """The network call fails: every due stream gets the error and drops the clip's frames (as
    a failing push does); b's post-processing fails: a's results still come; a stream given
    twice in one step is refused."""
    group = TrackerGroup(tracker(tiny_checkpoint), ["a", "b"])
    a, b = frames(8, 7), frames(8, 8)

    def step(i):
        return group.step([StreamFrame("a", a[i], i, i), StreamFrame("b", b[i], i, i)])

    group.sessions["a"].tracker.warmup()  # the shared runner
    for i in range(3):
        step(i)
    runner = group.sessions["a"].tracker.runner
    runner.run_many = lambda clips: 1 / 0
    steps = step(3)
    assert all(isinstance(st.error, ZeroDivisionError) for st in steps.values())
    assert [s.tracker.buffered for s in group.sessions.values()] == [0, 0]
    # the four frames of each failed clip are counted as dropped, once (the node's counter)
    for s in group.sessions.values():
        s.drop()  # what the worker does next
    assert [s.tracker.frames_dropped for s in group.sessions.values()] == [4, 4]
    del runner.run_many
    for i in range(4, 7):
        step(i)
    inner_b = group.sessions["b"].tracker.inner
    inner_b.finish_clip = lambda out, sec: 1 / 0
    steps = step(7)
    assert steps["a"].error is None and [r.stamp for r in steps["a"].results] == [4, 5, 6, 7]
    assert isinstance(steps["b"].error, ZeroDivisionError) and steps["b"].results == []
    with pytest.raises(ValueError, match="twice"):
        group.step([StreamFrame("a", a[0], 8), StreamFrame("a", a[1], 9)])


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
    group.sessions["b"].drop()  # one stream's new sequence keeps the others' features
    assert runner.encoded == 30
    for i in (10, 11):  # a's clip 8..11: only its two new frames are encoded
        group.sessions["a"].push(frames(12, 5)[i], i * 10**8, i)
    assert runner.encoded == 30 + 2


def test_a_clip_at_fault_fails_alone_in_a_batched_call(tiny_checkpoint):
    """b's clip makes the network call fail (and b's runner lookup, in a second round): a's
    clip runs again on its own and its results equal a's tracker alone."""
    group = TrackerGroup(tracker(tiny_checkpoint), ["a", "b"])
    a = frames(8, 9)
    b = [np.zeros_like(f) for f in a]  # the clip the fake network refuses
    group.sessions["a"].tracker.warmup()
    runner = group.sessions["a"].tracker.runner
    real = runner.run_many
    runner.run_many = lambda clips: ([][0] if any(c.max() == 0 for c in clips)
                                     else real(clips))
    got = []
    for i in range(4):
        steps = group.step([StreamFrame("a", a[i], i * 10**8, i), StreamFrame("b", b[i], i, i)])
        got += steps["a"].results
    assert steps["a"].error is None and isinstance(steps["b"].error, IndexError)
    inner_b = group.sessions["b"].tracker.inner
    inner_b.runner_for = lambda shape: 1 / 0
    for i in range(4, 8):
        steps = group.step([StreamFrame("a", a[i], i * 10**8, i), StreamFrame("b", b[i], i, i)])
        got += steps["a"].results
    assert steps["a"].error is None and isinstance(steps["b"].error, ZeroDivisionError)
    got += group.sessions["a"].flush()
    assert key(got, group.camera_of) == key(alone(tiny_checkpoint, a), lambda i: ("a", i))


def test_encoder_batches_stay_within_the_backends_max_batch(tiny_checkpoint):
    """A backend that compiles per frame count (max_batch = T): three cameras' 12 new frames go
    as three calls of 4, not one of 12 (a compile mid-stream)."""
    clips = {"a": frames(5, 4), "b": frames(5, 5), "c": frames(5, 6)}
    group = TrackerGroup(tracker(tiny_checkpoint), list(clips))
    group.sessions["a"].tracker.warmup()
    backend = group.sessions["a"].tracker.runner.backend
    backend.max_batch = 4
    sizes: list[int] = []
    encode = backend.encode
    backend.encode = lambda x: (sizes.append(len(x)), encode(x))[1]
    got = stepped(group, clips)
    assert sizes[:3] == [4, 4, 4], sizes
    for k, (n, images) in enumerate(clips.items()):
        assert key(got[n]) == key(alone(tiny_checkpoint, images),
                                  lambda i, k=k: (i - 1) * 3 + k + 1)


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
