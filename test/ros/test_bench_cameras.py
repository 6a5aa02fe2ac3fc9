"""`stemseg bag bench --cameras`: one node serving N cameras against N single-camera nodes."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from ros_helpers import frames_bag, make_frames

from stemseg_core.cli import main
from stemseg_ros.tools.bench_cameras import (
    SHIFT_PX,
    LayoutResult,
    camera_messages,
    flush_services,
    node_commands,
    output_topic,
    table,
)


def test_layouts_subscribe_the_same_topics_and_differ_in_processes():
    args = SimpleNamespace(checkpoint=None, device="cpu", node_arg=["backend=torch"])
    (one,) = node_commands(3, "one node", False, args)
    assert "cameras:=[c0, c1, c2]" in one and "backend:=torch" in one
    many = node_commands(3, "N nodes", True, args)
    assert [c[-1] for c in many] == ["__ns:=/c0", "__ns:=/c1", "__ns:=/c2"]
    assert "input_transport:=compressed" in many[0]
    assert output_topic(1, "one node") == "/stemseg_perception/c1/instances"
    assert output_topic(1, "N nodes") == "/c1/stemseg_perception/instances"
    assert flush_services(2, "one node") == ["/stemseg_perception/flush"]
    assert flush_services(2, "N nodes") == ["/c0/stemseg_perception/flush",
                                            "/c1/stemseg_perception/flush"]


def test_each_camera_sees_its_own_shifted_frames():
    from stemseg_ros import conversions as cv

    rgb = make_frames(2)
    a, b = camera_messages(rgb, 0, False), camera_messages(rgb, 1, False)
    np.testing.assert_array_equal(cv.image_to_array(a[1]), rgb[1])
    np.testing.assert_array_equal(cv.image_to_array(b[1]), np.roll(rgb[1], SHIFT_PX, axis=1))
    assert camera_messages(rgb, 1, True)[0].format.endswith("jpeg compressed bgr8")


def test_table_shows_the_peak_per_camera_and_for_all():
    text = table([LayoutResult(2, "N nodes", 3.5, 2400.0, 180.0, []),
                  LayoutResult(4, "one node", None, 900.0, None, [])])
    assert "| 2 | 2 nodes | 3.50 | 7.00 | 2400 | 180 |" in text
    assert "| 4 | one node | - | - | 900 | - |" in text


def test_bench_cameras_runs_both_layouts(tmp_path, tiny_checkpoint, domain_id):
    bag = frames_bag(tmp_path)
    out = tmp_path / "bench"
    assert main(["bag", "bench", "--bag", str(bag), "--out", str(out), "--checkpoint",
                 str(tiny_checkpoint), "--device", "cpu", "--domain-id", str(domain_id),
                 "--cameras", "2", "--rates", "4", "--duration", "2", "--search-steps", "0",
                 "--timeout", "90", "--node-arg", "backend=torch"]) == 0
    results = json.loads((out / "bench_cameras.json").read_text())
    assert [(r["cameras"], r["layout"]) for r in results] == [(2, "one node"), (2, "N nodes")]
    for r in results:
        (run,) = r["runs"]
        assert run["rate_hz"] == 2.0 and run["sent_per_camera"] == 4  # 4 Hz / 2 cameras x 2 s
        assert run["received_share"] == [1.0, 1.0], r  # 2 Hz, the last clip flushed
        assert run["cpu_percent"] > 0 and 100 < run["rss_mb"] < 20_000
    # N nodes hold N models: more memory than one node with N cameras
    assert results[1]["rss_mb"] > results[0]["rss_mb"]
    assert "| 2 | one node |" in (out / "bench_cameras.md").read_text()
