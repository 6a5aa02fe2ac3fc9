"""`stemseg bag soak`: the perception node under a long stream and many lifecycle cycles.

A command of the ``stemseg`` CLI registered by this package (entry point ``bag.soak``; ``make
soak`` runs it on a synthetic drive). The node runs as its own process, as on a robot. This
process feeds it a bag's images (repeated, stamped with the send time) at its peak rate for
``--camera-minutes``, then drives ``--cycles`` lifecycle cycles (deactivate, cleanup, configure,
activate, a few frames), sampling the node's resident memory, threads and open file descriptors
from /proc. It fails (exit 1) when memory grows more than ``--max-rss-growth`` MiB after the
warm-up, or threads or descriptors grow at all. Importing this module loads no ROS.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stemseg_core.commands.bag import HelpWithDefaults
from stemseg_ros.tools.bench_node import (
    MAX_LOSS,
    add_node_arguments,
    find_peak,
    load_frames,
    run_at,
)
from stemseg_ros.worker import DEFAULT_IDLE_FLUSH_SEC

HELP = "soak the node: its peak rate for 20 min of camera time, then 50 lifecycle cycles"
DESCRIPTION = """\
Soak test of the perception node (its own process, its own parameters):
1. peak rate: the highest rate (Hz) with at most 5 % of frames lost, searched as `stemseg bag
   bench` does (short runs), unless --rate is given;
2. stream: the bag's images, repeated, at that rate for --camera-minutes of camera time, each
   stamped with the time it is sent (the first --warmup-minutes are the warm-up);
3. lifecycle: --cycles cycles of deactivate -> cleanup -> configure -> activate, each followed by
   a few frames and ~/flush.
The node's resident memory (RSS), threads and open file descriptors are sampled from /proc every
--sample-sec during the stream and after each cycle; its /diagnostics counters (frames in/out,
dropped, worker errors) are recorded. It fails (exit 1) when, after the warm-up, RSS grows by
more than --max-rss-growth MiB or threads or file descriptors grow at all, comparing medians
of the last fifth of a phase's samples with its first fifth (stream: the samples after the
warm-up; lifecycle: one per cycle), so a transient spike does not count but lasting growth
does. Writes OUT/soak.json, OUT/soak.csv (the samples), OUT/soak.png (the plot) and
OUT/soak.md.

examples:
  make soak                                   # synthetic drive, demo model, defaults
  stemseg bag soak --bag drive.mcap --out out/soak --device cpu
  stemseg bag soak --bag drive.mcap --out out/quick --rate 5 --camera-minutes 2 --cycles 5
"""
#: Frames sent after each lifecycle cycle (more than one clip of the demo model).
CYCLE_FRAMES = 8
#: Seconds after a cycle (and after the stream) before sampling: past the node's idle release
#: (idle_flush_sec), so transient threads and clip buffers are gone and what stays is measured.
SETTLE_SEC = DEFAULT_IDLE_FLUSH_SEC + 1.0


@dataclass
class Sample:
    """One /proc reading of the node: t = seconds since the stream began."""

    t: float
    phase: str  # warmup | stream | lifecycle
    rss_mb: float
    threads: int
    fds: int
    frames_sent: int
    cycle: int = 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = HelpWithDefaults
    p.add_argument("--bag", required=True, help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument("--topic", help="image topic (default: the bag's only image topic)")
    p.add_argument("--out", required=True, help="folder for soak.json/.csv/.png/.md")
    p.add_argument("--rate", type=float, default=0.0,
                   help="feed rate in Hz (default 0: the node's peak rate, searched first)")
    p.add_argument("--camera-minutes", type=float, default=20.0,
                   help="minutes of camera time to stream (warm-up included)")
    p.add_argument("--warmup-minutes", type=float, default=2.0,
                   help="first minutes of the stream not judged (caches, allocator)")
    p.add_argument("--cycles", type=int, default=50, help="lifecycle cycles after the stream")
    p.add_argument("--sample-sec", type=float, default=10.0,
                   help="seconds between /proc samples during the stream")
    p.add_argument("--max-rss-growth", type=float, default=20.0,
                   help="largest RSS growth (MiB) after the warm-up that passes")
    add_node_arguments(p, "to answer a transition")


# ----------------------------------------------------------------------------------------------
# reading the node from /proc

def proc_sample(pid: int) -> tuple[float, int, int]:
    """(resident MiB, threads, open file descriptors) of process ``pid``."""
    rss_kb = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024.0, threads, len(os.listdir(f"/proc/{pid}/fd"))


#: Share of a phase's judged samples at its start and at its end whose medians are compared, so
#: that a transient (a clip's temporaries, a short-lived thread) is not taken for growth while
#: growth that lasts is.
WINDOW_SHARE = 0.2


def _medians(samples: list[Sample]) -> dict[str, float]:
    """Median RSS (MiB), threads and fds of ``samples``."""
    return {k: float(statistics.median(getattr(s, k) for s in samples))
            for k in ("rss_mb", "threads", "fds")}


def judge(samples: list[Sample], max_rss_growth: float) -> dict:
    """Pass/fail per phase: stream (the samples after the warm-up) and lifecycle (one sample per
    cycle), each the median of its last WINDOW_SHARE of samples against the median of its first.
    Growth in MiB / counts; ``ok`` False names what grew."""
    verdict: dict = {"ok": True, "failures": []}
    for phase in ("stream", "lifecycle"):
        judged = [s for s in samples if s.phase == phase]
        if len(judged) < 2:
            continue
        k = max(1, round(WINDOW_SHARE * len(judged)))
        base, end = _medians(judged[:k]), _medians(judged[-k:])
        growth = {key: end[key] - base[key] for key in base}
        verdict[phase] = {"base": base, "end": end, "growth": growth, "window": k,
                          "max_rss_mb": max(s.rss_mb for s in judged)}
        if growth["rss_mb"] > max_rss_growth:
            verdict["failures"].append(f"{phase}: RSS grew {growth['rss_mb']:+.1f} MiB (more "
                                       f"than {max_rss_growth:g})")
        for key in ("threads", "fds"):
            if growth[key] > 0:
                verdict["failures"].append(f"{phase}: {key} grew from {base[key]:g} to "
                                           f"{end[key]:g}")
    verdict["ok"] = not verdict["failures"]
    return verdict


# ----------------------------------------------------------------------------------------------
# driving the node

class LifecycleClient:
    """change_state of the node, from the player's ROS node."""

    def __init__(self, player) -> None:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        from stemseg_ros import names

        self.T, self._srv = Transition, ChangeState
        self.cli = player.node.create_client(ChangeState, names.node_topic("~/change_state"))
        self.timeout = player.opts.timeout

    def change(self, transition: int, label: str) -> None:
        from stemseg_ros.tools.replay import wait_future
        from stemseg_ros.tools.replay_node import ReplayError

        if not self.cli.wait_for_service(timeout_sec=self.timeout):
            raise ReplayError("the node offers no ~/change_state service")
        req = self._srv.Request()
        req.transition.id = transition
        res = wait_future(self.cli.call_async(req), self.timeout)
        if res is None or not res.success:
            raise ReplayError(f"lifecycle transition '{label}' failed "
                              f"({'no answer' if res is None else 'refused'})")

    def cycle(self) -> None:
        for tid, label in ((self.T.TRANSITION_DEACTIVATE, "deactivate"),
                           (self.T.TRANSITION_CLEANUP, "cleanup"),
                           (self.T.TRANSITION_CONFIGURE, "configure"),
                           (self.T.TRANSITION_ACTIVATE, "activate")):
            self.change(tid, label)


class Feeder:
    """Sends the bag's messages (repeated) at a fixed rate, each stamped with its send time."""

    def __init__(self, player, msgs: list) -> None:
        self.player, self.msgs, self.sent = player, msgs, 0

    def send(self, n: int, hz: float) -> None:
        t0 = time.monotonic()
        for k in range(n):
            self.player.wait_until(t0 + k / hz)
            msg = self.msgs[self.sent % len(self.msgs)]
            now = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
            self.player.pub.publish(msg)
            self.sent += 1


def peak_rate(player, msgs: list) -> float:
    """The node's peak rate by the bench's search (short runs: 6 s, 4 bisection steps)."""

    def measure(hz: float) -> bool:
        r = run_at(player, msgs, hz, 6.0, 20)
        print(f"  peak search {hz:6.2f} Hz: {100 * r.lost_share:.1f} % lost", file=sys.stderr)
        return r.lost_share <= MAX_LOSS

    fixed = {hz: measure(hz) for hz in (5.0, 10.0)}
    peak = find_peak(measure, [h for h, ok in fixed.items() if ok],
                     [h for h, ok in fixed.items() if not ok], 0.5, 4)
    if peak is None:
        raise RuntimeError("the node does not keep up even at 0.5 Hz")
    return peak


def stream(player, feeder: Feeder, hz: float, args, samples: list[Sample], t0: float) -> dict:
    """Feed for --camera-minutes at ``hz``, sampling every --sample-sec; the node's counters."""
    total = int(round(args.camera_minutes * 60 * hz))
    warm = int(round(args.warmup_minutes * 60 * hz))
    chunk = max(1, int(round(args.sample_sec * hz)))
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"streaming at {hz:.2f} Hz", total=total)
        while feeder.sent < total:
            n = min(chunk, total - feeder.sent)
            feeder.send(n, hz)
            player.new_run()  # keep the collector small; the node's counters are cumulative
            rss, threads, fds = proc_sample(player.proc.pid)
            samples.append(Sample(time.monotonic() - t0,
                                  "warmup" if feeder.sent <= warm else "stream",
                                  rss, threads, fds, feeder.sent))
            bar.update(task, completed=feeder.sent)
    time.sleep(SETTLE_SEC)
    rss, threads, fds = proc_sample(player.proc.pid)
    samples.append(Sample(time.monotonic() - t0, "stream", rss, threads, fds, feeder.sent))
    return dict(player.collector.node_stats)


def lifecycle(player, feeder: Feeder, hz: float, cycles: int, samples: list[Sample],
              t0: float) -> None:
    from rich.progress import track

    client = LifecycleClient(player)
    for c in track(range(1, cycles + 1), description="lifecycle cycles", transient=True):
        client.cycle()
        feeder.send(CYCLE_FRAMES, hz)
        player.flush()
        time.sleep(SETTLE_SEC)
        rss, threads, fds = proc_sample(player.proc.pid)
        samples.append(Sample(time.monotonic() - t0, "lifecycle", rss, threads, fds,
                              feeder.sent, cycle=c))


# ----------------------------------------------------------------------------------------------
# reporting

def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    colours = {"warmup": "tab:gray", "stream": "tab:blue", "lifecycle": "tab:orange"}
    for ax, key, label in zip(axes, ("rss_mb", "threads", "fds"),
                              ("RSS (MiB)", "threads", "open fds")):
        for phase, colour in colours.items():
            pts = [(s.t / 60, getattr(s, key)) for s in samples if s.phase == phase]
            if pts:
                ax.plot(*zip(*pts), ".-", color=colour, label=phase, ms=3)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    axes[0].set_title(title)
    axes[-1].set_xlabel("minutes since the stream began")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> str:
    rows = ["| phase (medians: first → last fifth) | RSS (MiB) | growth | max | threads | fds |",
            "|---|---|---|---|---|---|"]
    for phase in ("stream", "lifecycle"):
        v = result["verdict"].get(phase)
        if v:
            b, e, g = v["base"], v["end"], v["growth"]
            rows.append(f"| {phase} | {b['rss_mb']:.1f} → {e['rss_mb']:.1f} | "
                        f"{g['rss_mb']:+.1f} | {v['max_rss_mb']:.1f} | {b['threads']:g} → "
                        f"{e['threads']:g} | {b['fds']:g} → {e['fds']:g} |")
    s = result["node_counters"]
    lines = [f"rate {result['rate_hz']:.2f} Hz for {result['camera_minutes']:g} min of camera "
             f"time ({result['frames_streamed']} frames), then {result['cycles']} lifecycle "
             f"cycles; RSS at the start {result['rss_start_mb']:.1f} MiB",
             "", *rows, "",
             f"node counters after the stream: frames_in {s.get('frames_in', '?')}, frames_out "
             f"{s.get('frames_out', '?')}, skipped {s.get('frames_skipped', '?')}, dropped "
             f"{s.get('dropped', '?')}, worker errors {s.get('worker_errors', '?')}",
             "", "PASS" if result["verdict"]["ok"] else
             "FAIL: " + "; ".join(result["verdict"]["failures"])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stemseg_core.data.rosbag_io import BagError
    from stemseg_ros.tools.replay import Player, ReplayOptions
    from stemseg_ros.tools.replay_node import ReplayError

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    try:
        topic, msgtype, msgs, _ = load_frames(args.bag, args.topic)
        if not msgs:
            raise BagError(f"bag {args.bag} has no images on {topic}")
        opts = ReplayOptions(topic=topic, msgtype=msgtype, checkpoint=args.checkpoint,
                             device=args.device, node_args=list(args.node_arg),
                             domain_id=args.domain_id, timeout=args.timeout,
                             node_log=out / "node.log", diagnostics_period=1.0)
        with Player(opts, log=lambda m: print(m, file=sys.stderr)) as player:
            player.start_node()
            player.wait_until_active()
            rss_start = proc_sample(player.proc.pid)[0]
            hz = args.rate or peak_rate(player, msgs)
            print(f"feeding at {hz:.2f} Hz for {args.camera_minutes:g} min of camera time",
                  file=sys.stderr)
            feeder, t0 = Feeder(player, msgs), time.monotonic()
            counters = stream(player, feeder, hz, args, samples, t0)
            streamed = feeder.sent
            lifecycle(player, feeder, hz, args.cycles, samples, t0)
    except (BagError, FileNotFoundError, ReplayError, RuntimeError) as e:
        print(f"stemseg bag soak: error: {e}", file=sys.stderr)
        if samples:
            _write(out, samples, None)
        return 2
    result = {"bag": str(args.bag), "rate_hz": hz, "camera_minutes": args.camera_minutes,
              "warmup_minutes": args.warmup_minutes, "cycles": args.cycles,
              "frames_streamed": streamed, "rss_start_mb": rss_start,
              "max_rss_growth_mb": args.max_rss_growth, "node_command": player.cmd,
              "node_counters": counters, "verdict": judge(samples, args.max_rss_growth)}
    text = report(result)
    print(text)
    _write(out, samples, result, text)
    return 0 if result["verdict"]["ok"] else 1


def _write(out: Path, samples: list[Sample], result: dict | None, text: str = "") -> None:
    with open(out / "soak.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(samples[0])))
        w.writeheader()
        w.writerows(asdict(s) for s in samples)
    plot(samples, out / "soak.png", "stemseg node soak: " + (
        "incomplete" if result is None else "PASS" if result["verdict"]["ok"] else "FAIL"))
    if result is not None:
        (out / "soak.json").write_text(json.dumps({**result, "samples": [
            asdict(s) for s in samples]}, indent=1) + "\n")
        (out / "soak.md").write_text(f"# Node soak: {Path(result['bag']).name}\n\n{text}\n\n"
                                     f"![soak](soak.png)\n")
    print(f"wrote {out}/soak.csv, soak.png" + (", soak.json, soak.md" if result else ""),
          file=sys.stderr)
