"""The node's /diagnostics status and the input-health checks behind its warnings.

Counters are cumulative; the status level reflects the last ``WINDOW_SEC`` seconds only, so one
bad frame does not leave the node WARN forever. No ROS beyond the message types.
"""
from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from stemseg_ros.worker_stats import COUNTERS

#: Seconds of history the status level is decided on.
WINDOW_SEC = 10.0
#: Seconds a matched publisher may send nothing before the node warns.
STARVE_SEC = 5.0
#: Share of the images lost in transport (over the window) above which the node warns.
LOST_SHARE = 0.1
DDS_HINT = ("large images over best effort need a bigger Fast DDS shared-memory segment in the "
            "camera's process too: start it with FASTDDS_DEFAULT_PROFILES_FILE="
            "{profile} (the node runs with its own), or publish reliable / compressed images")


def device_model(device: str) -> str:
    """Name of the hardware behind a torch device string: the GPU's or the CPU's model."""
    if device.startswith("cuda"):
        try:
            import torch

            return torch.cuda.get_device_name(torch.device(device))
        except Exception:  # noqa: BLE001 - a name is only informative
            return device
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or device


def process_rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class InputMonitor:
    """Warns when a publisher is matched but its images do not arrive, or mostly get lost."""

    def __init__(self, profile_hint: str) -> None:
        self.profile_hint = profile_hint
        self.lost = 0  # images the middleware reported lost (message_lost events)
        self._matched_since: float | None = None
        self._history: deque[tuple[float, int, int]] = deque()  # (time, frames_in, lost)

    def check(self, topic: str, publishers: int, frames_in: int,
              now: float | None = None) -> str | None:
        """A warning naming `topic` and the fix, or None when the input looks healthy."""
        now = time.monotonic() if now is None else now
        self._history.append((now, frames_in, self.lost))
        while self._history and now - self._history[0][0] > WINDOW_SEC:
            self._history.popleft()
        if publishers == 0:
            self._matched_since = None
            return None
        if self._matched_since is None:
            self._matched_since = now
        t0, in0, lost0 = self._history[0]
        got, lost = frames_in - in0, self.lost - lost0
        hint = DDS_HINT.format(profile=self.profile_hint)
        if got == 0 and now - max(self._matched_since, t0) >= STARVE_SEC:
            return (f"{publishers} publisher(s) matched on {topic} but no image arrived in "
                    f"{now - max(self._matched_since, t0):.0f} s; if the camera is publishing, "
                    f"{hint}")
        if lost > LOST_SHARE * (got + lost) and lost > 0:
            return (f"{lost} of {got + lost} images on {topic} were lost in transport in the "
                    f"last {now - t0:.0f} s; {hint}")
        return None


class StatusBuilder:
    """Builds the node's DiagnosticStatus; the level looks at the last WINDOW_SEC seconds."""

    def __init__(self, status_name: str) -> None:
        self.name = status_name
        self._history: deque[tuple[float, dict[str, int]]] = deque()
        self._last: tuple[float, int, int] | None = None

    def build(self, snap: dict[str, Any], values: dict[str, str], hardware_id: str,
              active: bool, input_warning: str | None, now: float | None = None
              ) -> DiagnosticStatus:
        """`snap`: Stats.snapshot(); `values`: extra key/values (state, device, topic, ...)."""
        now = time.monotonic() if now is None else now
        counts = {k: int(snap[k]) for k in COUNTERS}
        self._history.append((now, counts))
        while len(self._history) > 1 and now - self._history[0][0] > WINDOW_SEC:
            self._history.popleft()
        old = self._history[0][1]
        recent = {k: counts[k] - old[k] for k in COUNTERS}
        t_prev, in_prev, out_prev = self._last or (now, counts["frames_in"], counts["frames_out"])
        dt = max(now - t_prev, 1e-6)
        self._last = (now, counts["frames_in"], counts["frames_out"])
        lat = np.asarray(snap["latencies"]) if snap["latencies"] else None
        plat = np.asarray(snap["proc_latencies"]) if snap["proc_latencies"] else None
        n_out = max(counts["frames_out"], 1)
        v = dict(values)
        v.update({
            "input_rate_hz": f"{(counts['frames_in'] - in_prev) / dt:.2f}",
            "output_rate_hz": f"{(counts['frames_out'] - out_prev) / dt:.2f}",
            "latency_stamp_to_publish_p50_s": f"{np.median(lat):.4f}" if lat is not None else "",
            "latency_stamp_to_publish_max_s": f"{lat.max():.4f}" if lat is not None else "",
            "latency_receive_to_publish_p50_s": f"{np.median(plat):.4f}" if plat is not None
            else "",
            "latency_receive_to_publish_max_s": f"{plat.max():.4f}" if plat is not None else "",
            **{k: str(counts[k]) for k in COUNTERS},
            "dropped_frames": str(counts["dropped"]),  # the name it had before
            "conversion_errors": str(counts["convert_errors"]),
            "tracker_resets": str(counts["resets"]),
            "memory_rss_mb": f"{process_rss_mb():.1f}",
            "tracker_time_per_frame_s": f"{snap['tracker_sec'] / n_out:.5f}",
            "node_time_per_frame_s": f"{(snap['convert_sec'] + snap['publish_sec']) / n_out:.5f}",
        })
        st = DiagnosticStatus(name=self.name, hardware_id=hardware_id)
        st.level, st.message = DiagnosticStatus.OK, v.get("state", "")
        problems = []
        if recent["worker_errors"] or recent["out_of_memory"]:
            st.level = DiagnosticStatus.ERROR
            problems.append(f"{recent['worker_errors']} failed clip(s), "
                            f"{recent['out_of_memory']} out of memory")
        if recent["dropped"] or recent["convert_errors"]:
            st.level = max(st.level, DiagnosticStatus.WARN)
            problems.append(f"{recent['dropped']} frame(s) dropped, {recent['convert_errors']} "
                            f"not convertible")
        if recent["frames_too_large"]:
            st.level = max(st.level, DiagnosticStatus.WARN)
            problems.append(f"{recent['frames_too_large']} frame(s) over max_image_pixels")
        if values.get("warming_up_for"):
            st.level = max(st.level, DiagnosticStatus.WARN)
            problems.append(f"warming up for {values['warming_up_for']} frames (building the "
                            f"engines for this size)")
        if active and input_warning:
            st.level = max(st.level, DiagnosticStatus.WARN)
            problems.append(input_warning)
        elif active and values.get("input_publishers") == "0":
            st.level = max(st.level, DiagnosticStatus.WARN)
            problems.append(f"no publisher on {values.get('input_topic', '?')}")
        if problems:
            st.message = f"{st.message}; " + "; ".join(problems) + f" (last {WINDOW_SEC:.0f} s)"
        st.values = [KeyValue(key=k, value=str(x)) for k, x in v.items()]
        return st


def error_status(name: str, message: str, hardware_id: str) -> DiagnosticArray:
    """One ERROR status (e.g. a refused checkpoint), published while the node is unconfigured."""
    arr = DiagnosticArray()
    arr.status = [DiagnosticStatus(level=DiagnosticStatus.ERROR, name=name, message=message,
                                   hardware_id=hardware_id)]
    return arr


class ConfigureErrorReporter:
    """While configure has failed: an ERROR /diagnostics status every second (the node has no
    pipeline status then), published on a publisher created on first use."""

    def __init__(self, node: Any, topic: str) -> None:
        self._node, self._topic = node, topic
        self._pub = self._timer = None

    def report(self, name: str, message: str | None, hardware_id: str) -> None:
        """Start (or replace) the repeated status; None stops it."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if message is None:
            return
        self._pub = self._pub or self._node.create_publisher(DiagnosticArray, self._topic, 10)
        arr = error_status(name, message, hardware_id)
        self._pub.publish(arr)
        self._timer = self._node.create_timer(1.0, lambda: self._pub.publish(arr))
