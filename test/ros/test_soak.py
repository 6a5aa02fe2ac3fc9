"""`stemseg bag soak`: the growth verdict on hand-made samples, /proc readings, the report."""
from __future__ import annotations

import os
import threading

from stemseg_ros.tools.soak import Sample, judge, proc_sample, report


def _s(phase: str, rss: float, threads: int = 20, fds: int = 30, cycle: int = 0) -> Sample:
    return Sample(t=0.0, phase=phase, rss_mb=rss, threads=threads, fds=fds, frames_sent=0,
                  cycle=cycle)


def test_growth_is_the_median_of_the_last_fifth_against_the_first():
    # RSS climbs during the warm-up (not judged), then 10 stream samples: the first two
    # (median 955) against the last two (median 974.5): +19.5 passes; a spike between does not
    # count
    rss = [950, 960, 1200, 960, 960, 960, 960, 960, 969, 980]
    samples = [_s("warmup", 800), _s("warmup", 1100)] + [_s("stream", r) for r in rss]
    v = judge(samples, 20.0)
    assert v["ok"], v["failures"]
    assert v["stream"]["window"] == 2
    assert v["stream"]["growth"] == {"rss_mb": 19.5, "threads": 0.0, "fds": 0.0}
    assert v["stream"]["max_rss_mb"] == 1200
    # +20.5 MiB that lasts fails, naming the phase and the growth
    v = judge(samples[:-1] + [_s("stream", 982)], 20.0)
    assert not v["ok"] and v["failures"] == ["stream: RSS grew +20.5 MiB (more than 20)"]


def test_one_more_thread_or_file_that_stays_fails():
    threads = [30, 30, 34, 30, 30, 30, 30, 30, 31, 31]  # a transient 34; one more at the end
    cycles = [_s("lifecycle", 1000, threads=t, cycle=i) for i, t in enumerate(threads, 1)]
    v = judge([_s("warmup", 900)] + cycles, 20.0)
    assert v["failures"] == ["lifecycle: threads grew from 30 to 31"]
    assert "stream" not in v  # no stream samples: nothing judged there
    fds = [_s("stream", 900, fds=f) for f in (30, 30, 31, 30, 30)]
    assert judge(fds, 20.0)["ok"]  # a descriptor open while sampled, gone again
    assert judge(fds[:-1] + [_s("stream", 900, fds=31)], 20.0)["failures"] == [
        "stream: fds grew from 30 to 31"]
    # fewer threads or files is no failure
    assert judge([_s("stream", 900, threads=25), _s("stream", 900, threads=22)], 20.0)["ok"]


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
    samples = [_s("warmup", 800), _s("stream", 900), _s("stream", 905),
               _s("lifecycle", 950, cycle=1), _s("lifecycle", 990, cycle=2)]
    result = {"rate_hz": 8.5, "camera_minutes": 20, "frames_streamed": 10200, "cycles": 2,
              "rss_start_mb": 700.0, "node_counters": {"frames_in": "10200"},
              "verdict": judge(samples, 20.0)}
    text = report(result)
    assert "| stream | 900.0 → 905.0 | +5.0 | 905.0 | 20 → 20 | 30 → 30 |" in text
    assert "| lifecycle | 950.0 → 990.0 | +40.0 |" in text
    assert text.endswith("FAIL: lifecycle: RSS grew +40.0 MiB (more than 20)")
