"""`stemseg bag bench`: the node measured at fixed rates, peak search, node vs bare tracker."""
from __future__ import annotations

import json
import os

from ros_helpers import frames_bag

from stemseg_core.cli import main
from stemseg_ros.tools.bench_measure import find_peak, proc_times


def test_find_peak_bisects_between_the_best_pass_and_the_first_failure():
    asked = []

    def measure(hz: float) -> bool:
        asked.append(hz)
        return hz <= 7.3

    peak = find_peak(measure, passed=[5.0], failed=[10.0, 15.0], min_rate=0.5, steps=5)
    assert asked == [7.5, 6.25, 6.875, 7.1875, 7.34375]
    assert peak == 7.1875
    # nothing kept up: start from min_rate, None when even that fails
    assert find_peak(lambda hz: hz <= 0.2, [], [10.0], 0.5, 3) is None
    assert find_peak(lambda hz: hz <= 6.0, [], [10.0], 0.5, 2) == 5.25  # 5.25 ok, 7.625 not
    assert find_peak(lambda hz: True, [10.0, 30.0], [], 0.5, 5) == 30.0  # all kept up


def test_proc_times_reads_this_process():
    cpu, rss = proc_times(os.getpid())
    assert cpu > 0 and 10 < rss < 100_000


def test_bench_runs_the_node_and_the_bare_tracker(tmp_path, tiny_checkpoint, domain_id):
    bag = frames_bag(tmp_path)
    out = tmp_path / "bench"
    assert main(["bag", "bench", "--bag", str(bag), "--out", str(out), "--checkpoint",
                 str(tiny_checkpoint), "--device", "cpu", "--domain-id", str(domain_id),
                 "--rates", "4", "--duration", "1", "--min-frames", "8", "--search-steps", "0",
                 "--timeout", "60", "--node-arg", "backend=torch"]) == 0
    result = json.loads((out / "bench_node.json").read_text())
    (run,) = result["fixed_rates"]
    assert run["rate_hz"] == 4.0 and run["sent"] == 8  # 4 Hz x 1 s < 8: 8, images repeated
    assert 0 < run["received"] <= 8
    assert run["lost_share"] == 1 - run["received"] / 8
    lat = run["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 60_000
    assert run["cpu_percent"] > 0 and 100 < run["rss_mb"] < 20_000
    assert result["checkpoint"] == str(tiny_checkpoint)
    assert result["peak_rate_hz"] in (4.0, None)
    assert result["bare_tracker_s_per_frame"] > 0
    assert "| 4.00 | 8 |" in (out / "bench_node.md").read_text()
