"""`stemseg bag bench`: measure the running perception node the way ros2_benchmark does.

A command of the ``stemseg`` CLI registered by this package (entry point ``bag.bench``). The node
runs as its own process with its own parameters (as on a robot); this process plays the bag's
images into it at fixed rates, each image stamped with the time it is sent, and records when
each result arrives. Then it searches for the peak rate (the highest at which at most
``--max-loss`` of the frames are lost) by bisection, and finally runs the bare
``StreamingTracker`` over the same frames in this process, with the node stopped, to show what
the node adds per frame. Importing this module loads no ROS.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stemseg_core.commands.bag import HelpWithDefaults
from stemseg_ros.tools.bench_measure import find_peak, proc_times

HELP = "measure the node as ros2_benchmark does: fixed rates, peak rate, latency, CPU, memory"
DESCRIPTION = """\
Measure the perception node (its own process, its own parameters) with a bag's images:
- fixed rates (--rates, default 10 15 20 30 Hz), each for --duration seconds and at least
  --min-frames frames (the bag's images repeated as needed), every image stamped with the time
  it is sent;
- the peak rate: the highest rate with at most --max-loss of the frames lost, by bisection
  between the highest fixed rate that kept up (or --min-rate) and the lowest that did not;
- per run: frames/s received, lost share, latency from stamp to the result's arrival here
  (p50/p90/p99/max; a result waits for its clip: up to T frames), the node's CPU (% of one core)
  and resident memory (from /proc), its GPU memory (from its /diagnostics, CUDA only);
- the node's time per frame over the bare tracker's: 1 / peak rate and the node's own busy time
  per frame (its /diagnostics) against StreamingTracker.push on the same frames in this process.
Each run ends with ~/flush, so the last partial clip is not counted as lost. Writes
OUT/bench_node.json and OUT/bench_node.md (the table) with --out.
With --cameras 1 2 4: one node with N cameras against N single-camera nodes, side by side
(OUT/bench_cameras.json and .md).

examples:
  stemseg bag bench --bag drive.mcap --out out/bench --device cpu
  stemseg bag bench --bag drive.mcap --rates 5 10 --duration 10 --node-arg backend=openvino
  stemseg bag bench --bag drive.mcap --cameras 1 2 4 --rates 8 12 16 --device cpu
"""
#: Rate of the run that loads caches and warms the node up before the measured runs.
WARMUP_HZ = 2.0
#: Largest share of lost frames at which a rate counts as kept up (ros2_benchmark's peak).
MAX_LOSS = 0.05


@dataclass
class RateRun:
    """One run at a fixed rate; latencies in ms, rates in Hz, memory in MiB."""

    rate_hz: float
    sent: int
    received: int
    lost_share: float
    fps: float
    latency_ms: dict[str, float]
    cpu_percent: float
    rss_mb: float
    gpu_memory_mb: float | None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = HelpWithDefaults
    p.add_argument("--bag", required=True, help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument("--topic", help="image topic (default: the bag's only image topic)")
    p.add_argument("--out", help="folder for bench_node.json and bench_node.md")
    p.add_argument("--rates", type=float, nargs="+", default=[10.0, 15.0, 20.0, 30.0],
                   help="fixed rates (Hz)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    p.add_argument("--min-frames", type=int, default=20,
                   help="frames per run at least (slow rates run longer), so that one lost "
                   "frame is a fine enough step of the lost share")
    p.add_argument("--max-loss", type=float, default=MAX_LOSS,
                   help="largest share of lost frames at which a rate counts as kept up")
    p.add_argument("--min-rate", type=float, default=0.5,
                   help="lower end of the peak search when no fixed rate keeps up (Hz)")
    p.add_argument("--search-steps", type=int, default=5,
                   help="bisection steps of the peak search (0: no search)")
    p.add_argument("--no-bare", action="store_true",
                   help="skip the bare tracker run (no node/tracker ratio)")
    p.add_argument("--cameras", type=int, nargs="+", metavar="N",
                   help="multi-camera mode: for each N, one node serving N cameras against N "
                   "single-camera nodes (the bag's camera N times, shifted per camera; --rates "
                   "are divided by N): peak rate per camera, RSS, CPU (bench_cameras.py)")
    add_node_arguments(p, "for the last results")


def add_node_arguments(p: argparse.ArgumentParser, waits_for: str) -> None:
    """The arguments of the node process the bag tools start (`bag bench`, `bag soak`):
    checkpoint, device, extra parameters, domain and the timeout (``waits_for``: what else it
    bounds besides the start)."""
    p.add_argument("--checkpoint", help="checkpoint for the node (default: the node's)")
    p.add_argument("--device", help="node device: auto, cpu or cuda")
    p.add_argument("--node-arg", action="append", default=[], metavar="K=V",
                   help="extra node parameter (repeatable)")
    p.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: a free one)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help=f"seconds to wait for the node to start / {waits_for}")


# ----------------------------------------------------------------------------------------------
# measuring one run

def _latency_summary(lat_ms: list[float]) -> dict[str, float]:
    import numpy as np

    if not lat_ms:
        return {}
    a = np.asarray(lat_ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def run_at(player, msgs: list, hz: float, duration: float, min_frames: int = 1) -> RateRun:
    """Send ``msgs`` (repeated) at ``hz`` for ``duration`` s (at least ``min_frames`` frames),
    flush, collect; one RateRun."""
    player.new_run()
    pid = player.proc.pid
    cpu0, _ = proc_times(pid)
    t0 = time.monotonic()
    n = max(1, min_frames, int(round(hz * duration)))
    for k in range(n):
        player.wait_until(t0 + k / hz)
        msg = msgs[k % len(msgs)]
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        player.send(now, msg)
    player.finish(settle=3.0)
    cpu1, rss = proc_times(pid)
    c = player.collector
    recv = [r for r in c.recv_s if r is not None]
    wall = (max(recv) - player.send_t[0]) if recv else time.monotonic() - t0
    lat = [(r - s) * 1000.0 for s, r in zip(player.send_t, c.recv_s) if r is not None]
    return RateRun(rate_hz=hz, sent=n, received=c.received, lost_share=1.0 - c.received / n,
                   fps=c.received / wall if wall > 0 else 0.0,
                   latency_ms=_latency_summary(lat),
                   cpu_percent=100.0 * (cpu1 - cpu0) / max(time.monotonic() - t0, 1e-6),
                   rss_mb=rss, gpu_memory_mb=_float_or_none(c.node_stats.get("gpu_memory_mb")))


# ----------------------------------------------------------------------------------------------
# the bare tracker

def bare_tracker_s_per_frame(checkpoint: str, device: str, node_args: list[str],
                             frames_rgb: list) -> float:
    """Seconds per frame of StreamingTracker.push (+ the final flush) over ``frames_rgb``, with
    the node's config overrides and thresholds, after one warm-up clip. Runs in a thread of its
    own, as the node's worker does (torch's CPU threading differs between the main thread and
    others)."""
    import threading

    out: list = []
    worker = threading.Thread(target=lambda: out.append(_bare_run(checkpoint, device, node_args,
                                                                  frames_rgb)),
                              name="bare-tracker")
    worker.start()
    worker.join()
    if not out:
        raise RuntimeError("the bare tracker run failed (see the traceback above)")
    return out[0]


def _bare_run(checkpoint: str, device: str, node_args: list[str], frames_rgb: list) -> float:
    from stemseg_core.inference.tracker import StreamingTracker

    overrides, thresholds = _node_tracker_settings(node_args, device)
    tracker = StreamingTracker.from_checkpoint(checkpoint, device=device, overrides=overrides)
    if thresholds:
        tracker.set_thresholds(**thresholds)
    h, w = frames_rgb[0].shape[:2]
    tracker.warmup(h, w)
    tracker.reset()
    t0 = time.perf_counter()
    for i, rgb in enumerate(frames_rgb):
        tracker.push(rgb, i)
    tracker.flush()
    return (time.perf_counter() - t0) / len(frames_rgb)


def _node_tracker_settings(node_args: list[str], device: str = "cpu") -> tuple[dict, dict]:
    """The node's config overrides on ``device`` and explicit thresholds for its parameters +
    ``node_args``."""
    from types import SimpleNamespace

    import yaml

    from stemseg_core.config import resolve_device
    from stemseg_ros import core_settings, param_checks, params
    from stemseg_ros.tools.replay_node import parse_node_args

    values = params.defaults()
    for k, v in parse_node_args(node_args):
        values[k] = param_checks.check_value(k, yaml.safe_load(v))
    thresholds = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
                  if k in params.THRESHOLDS and v not in (params.FROM_CHECKPOINT, "", (), None)}
    overrides = core_settings.tracker_overrides(SimpleNamespace(**values),
                                                resolve_device(device or "auto"))
    return overrides, thresholds


# ----------------------------------------------------------------------------------------------
# command

def load_frames(bag: str, topic: str | None):
    """(topic, msgtype, message objects, RGB frames) of the bag's image topic."""
    import numpy as np
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from stemseg_core.data.rosbag_io import COMPRESSED_MSGTYPE, BagImageReader

    with BagImageReader(bag, topic) as reader:
        name, msgtype = reader.topic.name, reader.topic.msgtype
        cls = CompressedImage if msgtype == COMPRESSED_MSGTYPE else Image
        msgs, rgb = [], []
        for fr in reader:
            msgs.append(deserialize_message(fr.raw, cls))
            rgb.append(np.require(fr.decode(), requirements='W'))  # torch wants writable
    return name, msgtype, msgs, rgb


def run(args: argparse.Namespace) -> int:
    from stemseg_core.data.rosbag_io import BagError
    from stemseg_ros.tools.replay import Player, ReplayOptions
    from stemseg_ros.tools.replay_node import ReplayError

    try:
        topic, msgtype, msgs, rgb = load_frames(args.bag, args.topic)
        if not msgs:
            raise BagError(f"bag {args.bag} has no images on {topic}")
        if args.cameras:
            if min(args.cameras) < 1:
                raise BagError(f"--cameras: counts must be >= 1, got {args.cameras}")
            from stemseg_ros.tools import bench_cameras

            return bench_cameras.run(args, msgtype, rgb)
        opts = ReplayOptions(topic=topic, msgtype=msgtype, checkpoint=args.checkpoint,
                             device=args.device, node_args=list(args.node_arg),
                             domain_id=args.domain_id, timeout=args.timeout,
                             node_log=Path(args.out) / "node.log" if args.out else None,
                             diagnostics_period=0.5)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        with Player(opts, log=lambda m: print(m, file=sys.stderr)) as player:
            player.start_node()
            player.wait_until_active()
            result = _measure(player, msgs, args)
    except (BagError, FileNotFoundError) as e:
        print(f"stemseg bag bench: error: {e}", file=sys.stderr)
        return 2
    except ReplayError as e:
        print(f"stemseg bag bench: error: {e}", file=sys.stderr)
        return 1
    if not args.no_bare and result["checkpoint"]:
        bare = bare_tracker_s_per_frame(result["checkpoint"], result["device"],
                                        list(args.node_arg), rgb)
        _add_ratios(result, bare)
    _print_and_write(result, args)
    return 0


def _measure(player, msgs: list, args: argparse.Namespace) -> dict:
    """Warm-up, fixed rates, peak search; the node's facts from its /diagnostics."""
    print(f"warm-up at {WARMUP_HZ:g} Hz", file=sys.stderr)
    run_at(player, msgs, WARMUP_HZ, min(args.duration, 3.0))
    runs: list[RateRun] = []

    def measure(hz: float) -> bool:
        r = run_at(player, msgs, hz, args.duration, args.min_frames)
        runs.append(r)
        print(f"{hz:7.2f} Hz: {r.received}/{r.sent} received ({100 * r.lost_share:.1f} % lost),"
              f" {r.fps:.2f} frames/s, p50 {r.latency_ms.get('p50', float('nan')):.0f} ms",
              file=sys.stderr)
        return r.sent > 0 and r.lost_share <= args.max_loss

    fixed = {hz: measure(hz) for hz in args.rates}
    peak = find_peak(measure, [h for h, ok in fixed.items() if ok],
                     [h for h, ok in fixed.items() if not ok], args.min_rate, args.search_steps)
    ns = player.collector.node_stats
    return {"bag": str(args.bag), "frames_in_bag": len(msgs), "duration_s": args.duration,
            "max_loss": args.max_loss, "node_command": player.cmd,
            "checkpoint": ns.get("checkpoint", ""), "device": ns.get("device", "cpu"),
            "fixed_rates": [asdict(r) for r in runs[:len(args.rates)]],
            "search": [asdict(r) for r in runs[len(args.rates):]],
            "peak_rate_hz": peak,
            "node_busy_s_per_frame": _node_busy(ns)}


def _node_busy(ns: dict[str, str]) -> float | None:
    """The node's own time per frame (tracker + conversion + publishing), from /diagnostics."""
    t, o = _float_or_none(ns.get("tracker_time_per_frame_s")), _float_or_none(
        ns.get("node_time_per_frame_s"))
    return None if t is None else t + (o or 0.0)


def _add_ratios(result: dict, bare_s: float) -> None:
    result["bare_tracker_s_per_frame"] = bare_s
    peak, busy = result["peak_rate_hz"], result["node_busy_s_per_frame"]
    result["node_over_bare_at_peak"] = (1.0 / peak) / bare_s if peak else None
    result["node_busy_over_bare"] = busy / bare_s if busy else None


def _table(result: dict) -> str:
    rows = ["| rate (Hz) | sent | received | lost % | frames/s | p50 ms | p90 ms | p99 ms | "
            "max ms | CPU % | RSS MiB | GPU MiB |", "|" + "---|" * 12]
    for r in result["fixed_rates"] + result["search"]:
        lat = r["latency_ms"]
        cells = [f"{r['rate_hz']:.2f}", str(r["sent"]), str(r["received"]),
                 f"{100 * r['lost_share']:.1f}", f"{r['fps']:.2f}",
                 *[f"{lat[k]:.0f}" if k in lat else "-" for k in ("p50", "p90", "p99", "max")],
                 f"{r['cpu_percent']:.0f}", f"{r['rss_mb']:.0f}",
                 "-" if r["gpu_memory_mb"] is None else f"{r['gpu_memory_mb']:.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    peak = result["peak_rate_hz"]
    lowest = min(r["rate_hz"] for r in result["fixed_rates"] + result["search"])
    rows += ["", f"Peak rate (<= {100 * result['max_loss']:.0f} % lost): "
             + (f"{peak:.2f} Hz" if peak else f"below {lowest:g} Hz")]
    if "bare_tracker_s_per_frame" in result:
        bare = result["bare_tracker_s_per_frame"]
        rows.append(f"Bare tracker: {1000 * bare:.1f} ms per frame; node at peak: "
                    + (f"{result['node_over_bare_at_peak']:.2f} x" if peak else "-")
                    + "; node busy time: "
                    + (f"{result['node_busy_over_bare']:.2f} x"
                       if result["node_busy_over_bare"] else "-"))
    return "\n".join(rows)


def _print_and_write(result: dict, args: argparse.Namespace) -> None:
    table = _table(result)
    print(table)
    if args.out:
        out = Path(args.out)
        (out / "bench_node.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "bench_node.md").write_text(f"# Node benchmark: {Path(args.bag).name}\n\n"
                                           f"{table}\n")
        print(f"wrote {out / 'bench_node.json'} and {out / 'bench_node.md'}")
