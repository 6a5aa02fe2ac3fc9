"""What `stemseg bag bench` measures with, shared by its single- and multi-camera modes: a
process's CPU time and memory, and the bisection for the peak rate. No ROS here."""
from __future__ import annotations

import os


def proc_times(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, resident MiB) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def find_peak(measure, passed: list[float], failed: list[float], min_rate: float,
              steps: int) -> float | None:
    """Bisection for the highest rate that keeps up, between the best passing and the lowest
    failing rate (``measure(hz) -> bool``). None when even ``min_rate`` fails."""
    lo = max(passed) if passed else None
    hi = min(failed) if failed else None
    if hi is None:
        return lo  # every fixed rate kept up: the peak is at least the highest
    if lo is None:
        if not measure(min_rate):
            return None
        lo = min_rate
    for _ in range(steps):
        mid = (lo + hi) / 2
        if measure(mid):
            lo = mid
        else:
            hi = mid
    return lo
