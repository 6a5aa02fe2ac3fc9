"""Scoring of a bag replay (the ROS-free part of `stemseg bag eval`)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from stemseg_core.data.rle import kitti_string_to_mask
from stemseg_core.evaluation.replay_scoring import (
    ReplayOutcome,
    ReplaySetup,
    frame_numbers,
    score_replay,
    weights_identity,
    write_bag_eval_report,
)
from stemseg_core.inference.types import FrameResult, TrackedInstance

H, W = 6, 8


def _result(i: int, track_id: int, x0: int) -> FrameResult:
    mask = np.zeros((H, W), bool)
    mask[1:4, x0:x0 + 2] = True
    return FrameResult(i, 1000 + i, (H, W), [TrackedInstance(track_id, 1, "car", 0.9, mask)])


def _outcome(node_stats: dict[str, str]) -> ReplayOutcome:
    # 3 frames sent; the result of the second never came
    return ReplayOutcome(stamps_ns=[1000, 1100, 1200], send_s=[0.0, 0.1, 0.2],
                         recv_s=[0.5, None, 0.45], results=[_result(0, 7, 1), None,
                                                            _result(2, 7, 3)],
                         wall_s=0.5, node_command=["perception"], node_stats=node_stats)


def test_frame_numbers_from_the_bag_index_or_positions():
    assert frame_numbers([1000, 1100], {1000: 40, 1100: 41}) == [40, 41]
    assert frame_numbers([1000, 1100], {1000: 40}) == [0, 1]  # partial index: positions
    assert frame_numbers([5, 6], None) == [0, 1]


def test_weights_identity_hashes_the_file_the_node_loaded(tmp_path):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights")
    assert weights_identity({"checkpoint": str(ckpt)}) == \
        (str(ckpt), hashlib.sha256(b"weights").hexdigest())
    assert weights_identity({"checkpoint": str(ckpt), "weights_sha256": "ab" * 32})[1] == \
        "ab" * 32  # the node's own report wins
    assert weights_identity({"checkpoint": str(tmp_path / "gone.pt")})[1] is None
    assert weights_identity({}) == ("", None)


def test_score_replay_writes_results_by_kitti_frame_and_the_report(tmp_path):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights")
    setup = ReplaySetup("/b/drive.mcap", "/cam", "sensor_msgs/msg/Image", "0003", "lockstep", 3)
    out = tmp_path / "out"
    res = score_replay(out, setup, _outcome({"checkpoint": str(ckpt), "device": "cpu"}),
                       {1000: 20, 1100: 21, 1200: 22})
    lines = res.results_file.read_text().splitlines()
    assert res.results_file == out / "0003.txt" and len(lines) == 2
    assert [ln.split()[:5] for ln in lines] == [["20", "7", "1", str(H), str(W)],
                                                ["22", "7", "1", str(H), str(W)]]
    mask = kitti_string_to_mask(lines[1].split()[5], H, W)
    assert mask[1:4, 3:5].all() and mask.sum() == 6
    assert res.metrics is None and res.metrics_file is None

    s = res.stats
    assert (s.sent, s.received, s.lost_frames) == (3, 2, [21])
    assert s.latency_ms == [pytest.approx(500.0), None, pytest.approx(250.0)]
    assert s.extra["weights SHA-256"] == hashlib.sha256(b"weights").hexdigest()
    assert s.extra["device"] == "cpu" and s.extra["sequence"] == "0003"

    report = write_bag_eval_report(out, res)
    text = report.read_text()
    assert hashlib.sha256(b"weights").hexdigest() in text and "Lost frames: 21" in text
    replay = json.loads((out / "replay.json").read_text())
    assert replay["lost_frames"] == [21] and replay["frame_numbers"] == [20, 21, 22]
