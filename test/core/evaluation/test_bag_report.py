"""Replay statistics and the bag-eval report (ROS-free part of `stemseg bag eval`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stemseg_core.evaluation.bag_report import ReplayStats, write_report


def _stats(memory=()) -> ReplayStats:
    # 5 frames: frame 3 never sent, frame 12 sent but its result never came
    return ReplayStats(bag="/b/drive.mcap", topic="/cam", msgtype="sensor_msgs/msg/Image",
                       mode="rate 1x", frames_in_bag=5, send_s=[0.0, 0.1, 0.2, None, 0.4],
                       latency_ms=[100.0, 300.0, 200.0, None, None],
                       frame_numbers=[0, 1, 2, 3, 12], wall_s=2.0, memory_mb=list(memory))


def test_counts_latency_and_lost_frames():
    s = _stats()
    assert (s.sent, s.received, s.lost_frames) == (4, 3, [12])
    lat = s.latency_summary()
    assert lat["p50"] == 200.0 and lat["max"] == 300.0 and lat["mean"] == 200.0
    assert lat["p90"] == pytest.approx(280.0)  # linear interpolation between 200 and 300
    assert s.throughput_fps() == 1.5


def test_memory_summary_measures_growth_over_the_second_half():
    s = _stats([(0.0, 500.0), (1.0, 520.0), (2.0, 530.0), (3.0, 531.0), (4.0, 529.0)])
    m = s.memory_summary()
    # half time = 2.0 s -> the 530 MiB sample; growth = 529 - 530
    assert (m["first"], m["max"], m["last"]) == (500.0, 531.0, 529.0)
    assert m["growth_second_half"] == pytest.approx(-1.0) and m["samples"] == 5
    assert _stats().memory_summary() == {}


def test_report_files(tmp_path):
    overlays = [np.full((20, 40, 3), i * 40, np.uint8) for i in range(3)]
    s = _stats([(0.0, 500.0), (1.0, 510.0), (2.0, 510.0)])
    report = write_report(tmp_path, s, {"car": {"HOTA": 61.0, "IDSW": 2}}, overlays)
    md = report.read_text()
    assert "| car | 61.00 | 2 |" in md
    assert "| 5 | 4 | 3 | 1 |" in md and "Lost frames: 12" in md
    assert "## Node memory" in md and "| 500 MiB | 510 MiB | 510 MiB | +0.0 MiB | 3 |" in md
    for name in ("latency.png", "memory.png", "contact_sheet.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    replay = json.loads((tmp_path / "replay.json").read_text())
    assert replay["lost_frames"] == [12] and replay["memory_summary_mb"]["max"] == 510.0


def test_report_without_memory_or_results(tmp_path):
    s = ReplayStats("b", "/cam", "sensor_msgs/msg/Image", "lockstep", 1, [0.0], [None], [0],
                    1.0)
    md = write_report(tmp_path, s).read_text()
    assert "No results received." in md and "Node memory" not in md
    assert not (tmp_path / "memory.png").exists()
