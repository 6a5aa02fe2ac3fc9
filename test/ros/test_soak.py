"""`stemseg bag soak`: the growth verdict on hand-made samples, /proc readings, the report."""
from __future__ import annotations

import os
import threading

from stemseg_ros.soak import Sample, judge, proc_sample, report


def _s(phase: str, rss: float, threads: int = 20, fds: int = 30, cycle: int = 0) -> Sample:
    return Sample(t=0.0, phase=phase, rss_mb=rss, threads=threads, fds=fds, frames_sent=0,
                  cycle=cycle)


def test_stream_growth_is_judged_from_the_end_of_the_warmup():
    # RSS climbs during the warm-up (caches) and then stays: +150 before, +19.5 after -> pass
    samples = [_s("warmup", 800), _s("warmup", 950), _s("stream", 960), _s("stream", 969.5)]
    v = judge(samples, 20.0)
    assert v["ok"], v["failures"]
    assert v["stream"]["growth"] == {"rss_mb": 19.5, "threads": 0, "fds": 0}
    assert v["stream"]["max_rss_mb"] == 969.5
    # 20.5 MiB after the warm-up fails, naming the phase and the growth
    v = judge(samples[:-1] + [_s("stream", 970.5)], 20.0)
    assert not v["ok"] and v["failures"] == ["stream: RSS grew +20.5 MiB (more than 20)"]


def test_one_more_thread_or_file_fails_and_lifecycle_compares_with_its_first_cycle():
    samples = [_s("warmup", 900), _s("stream", 900, threads=21),
               _s("lifecycle", 1000, fds=30, cycle=1), _s("lifecycle", 990, fds=31, cycle=2)]
    v = judge(samples, 20.0)
    assert v["failures"] == ["stream: threads grew from 20 to 21", "lifecycle: fds grew from 30 "
                             "to 31"]
    assert v["lifecycle"]["growth"]["rss_mb"] == -10
    # fewer threads or files is no failure
    assert judge([_s("warmup", 900, threads=25), _s("stream", 900, threads=22)], 20.0)["ok"]


def test_proc_sample_sees_a_new_thread_and_a_new_file(tmp_path):
    rss, threads, fds = proc_sample(os.getpid())
    assert rss > 10
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    with open(tmp_path / "f", "w"):
        _, threads2, fds2 = proc_sample(os.getpid())
    stop.set()
    t.join()
    assert threads2 == threads + 1 and fds2 == fds + 1


def test_report_lists_both_phases_and_the_verdict():
    samples = [_s("warmup", 900), _s("stream", 905), _s("lifecycle", 950, cycle=1),
               _s("lifecycle", 990, cycle=2)]
    result = {"rate_hz": 8.5, "camera_minutes": 20, "frames_streamed": 10200, "cycles": 2,
              "rss_start_mb": 700.0, "node_counters": {"frames_in": "10200"},
              "verdict": judge(samples, 20.0)}
    text = report(result)
    assert "| stream | 900.0 → 905.0 | +5.0 | 905.0 | 20 → 20 | 30 → 30 |" in text
    assert "| lifecycle | 950.0 → 990.0 | +40.0 |" in text
    assert text.endswith("FAIL: lifecycle: RSS grew +40.0 MiB (more than 20)")
