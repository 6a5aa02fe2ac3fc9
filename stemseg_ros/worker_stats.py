"""The node's counters per camera: shared by the image callback, the worker thread and the
diagnostics (one lock), with the windows of latencies and worker time per frame."""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Latencies kept for the diagnostics percentiles.
LATENCY_WINDOW = 512
#: Frames over which the worker's time per frame is averaged (several clips).
COST_WINDOW = 64


COUNTERS = ("frames_in", "frames_skipped", "frames_out", "dropped", "convert_errors",
            "frames_too_large", "frames_resized", "worker_errors", "out_of_memory", "resets",
            "clips_batched")


@dataclass
class Stats:
    """Counters (cumulative) shared by the callback, the worker and diagnostics (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_in: int = 0  # converted or not
    frames_skipped: int = 0  # left out to keep max_input_rate
    frames_out: int = 0
    dropped: int = 0  # queue full, or lost with a failed clip, or left at deactivate
    convert_errors: int = 0
    frames_too_large: int = 0  # over max_image_pixels, dropped before decoding
    frames_resized: int = 0  # resized into a model input shape the stream has (no new build)
    worker_errors: int = 0
    out_of_memory: int = 0
    resets: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    proc_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    convert_sec: float = 0.0  # callback time (decode + enqueue), summed
    tracker_sec: float = 0.0  # push/flush time, summed
    publish_sec: float = 0.0  # message building + publish, summed
    costs: deque = field(default_factory=lambda: deque(maxlen=COST_WINDOW))  # s per frame
    clips: int = 0  # pushes that ran a clip
    clips_batched: int = 0  # clips that ran in one network call with other cameras' clips

    def add(self, **counts: float) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def snapshot(self) -> dict[str, Any]:
        """All values; the latency windows are returned and cleared."""
        with self.lock:
            d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name not in ("lock", "latencies", "proc_latencies", "costs")}
            d["latencies"] = list(self.latencies)
            d["proc_latencies"] = list(self.proc_latencies)
            self.latencies.clear()
            self.proc_latencies.clear()
        return d

    def record_latency(self, stamp_to_publish_ns: int, received: float,
                       publish_sec: float) -> None:
        with self.lock:
            self.latencies.append(stamp_to_publish_ns / 1e9)
            self.proc_latencies.append(time.monotonic() - received)
            self.publish_sec += publish_sec

    def frame_cost(self) -> float:
        """Mean seconds the worker spent per frame over the last COST_WINDOW frames; 0 until a
        clip has run (before that only the cheap buffering is measured)."""
        with self.lock:
            return sum(self.costs) / len(self.costs) if self.clips and self.costs else 0.0


__all__ = ["COST_WINDOW", "COUNTERS", "LATENCY_WINDOW", "Stats"]
