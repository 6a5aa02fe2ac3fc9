"""Several streams' due clips through one network call (``TrackerGroup.step``, issue 37).

The streams of a TrackerGroup share one runner per model input shape (tracker_group.py). When
several of them have a clip due at the same time, :func:`run_due_clips` gives each runner ONE
``NetworkRunner.run_many`` call with all those clips (and, with the flip test, their mirrors):
the frames that no kept frame matches, N_total of them over all the clips, are encoded as one
batch; then each clip is decoded on its own (a decoder graph takes one clip, export/split.py).
Each stream then finishes its own clip (clustering, stitching, post-processing:
``StreamingTracker.finish_clip``). Results equal running the clips one after the other wherever
the backend's encoder gives a frame the same features in any batch: torch fp32 and OpenVINO
fp32 (test_tracker_group.py); OpenVINO bf16 on this project's 2-core CPU too (the demo model's
features of 8 frames encoded at once equal those encoded 1, 2, 4 or 6 at a time, bit for bit,
2026-12-07). A GPU's kernels may differ by batch size: there, compare before relying on it.
A runner without ``run_many`` (the eager wrapper of a model that is not an STEmSeg network) is
called on the clips one by one.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stemseg_core.inference.flip_average import predict_many

#: One stream's network outputs (numpy float32, batch 1), or what its network call raised.
Outcome = dict[str, np.ndarray] | Exception


def run_due_clips(trackers: Sequence[Any], before: Callable[[Any], None] | None = None
                  ) -> list[tuple[Outcome, float, int]]:
    """For each StreamingTracker with a clip due (``due_clip()`` not None): its clip's network
    outputs (flip test included, as ``_forward`` gives them) or the exception of the call, its
    share of that call's seconds and how many clips the call ran. One call per (runner, flip
    test) among the trackers; ``before(runner)`` is called on each runner before its call
    (TrackerGroup.widen). Never raises: a stream whose clip or runner cannot be had gets its
    error, and when a call of several clips fails, each clip runs again on its own (the
    features encoded before the failure are kept), so only the clip at fault fails."""
    done: list[tuple[Outcome, float, int]] = [({}, 0.0, 0)] * len(trackers)
    clips: dict[int, np.ndarray] = {}
    calls: dict[tuple[int, bool], list[int]] = {}
    runners: dict[int, Any] = {}
    for i, tr in enumerate(trackers):
        try:
            clip = tr.due_clip()
            if clip is None:
                raise ValueError(f"stream {i} of the batch has no clip due")
            runner = tr.runner_for(tuple(clip.shape[2:]))
        except Exception as e:  # noqa: BLE001 - this stream's error; the others go on
            done[i] = (e, 0.0, 1)
            continue
        clips[i], runners[id(runner)] = clip, runner
        calls.setdefault((id(runner), bool(tr.flip_test)), []).append(i)
    for (key, flip), idx in calls.items():
        runner, t0 = runners[key], time.perf_counter()
        if before is not None:
            before(runner)
        run_many = (getattr(runner, "run_many", None)
                    or (lambda cs, r=runner: [r(c) for c in cs]))
        x_dims = trackers[idx[0]].x_dims
        try:
            outs: list[Outcome] = list(predict_many(run_many, [clips[i] for i in idx], x_dims,
                                                    flip))
        except Exception as e:  # noqa: BLE001 - then clip by clip, below
            outs = [e] if len(idx) == 1 else [_alone(run_many, clips[i], x_dims, flip)
                                              for i in idx]
        share = (time.perf_counter() - t0) / len(idx)
        for i, out in zip(idx, outs):
            done[i] = (out, share, len(idx))
    return done


def _alone(run_many: Callable, clip: np.ndarray, x_dims: Sequence[int], flip: bool) -> Outcome:
    try:
        return predict_many(run_many, [clip], x_dims, flip)[0]
    except Exception as e:  # noqa: BLE001 - this clip's own error
        return e


__all__ = ["Outcome", "run_due_clips"]
