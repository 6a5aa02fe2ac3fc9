"""`stemseg bag bench --cameras 1 2 4`: one node serving N cameras against N single-camera nodes.

For each N, two layouts in turn: ONE node with ``cameras: [c0 .. cN-1]`` (one network), and N
nodes, node k in namespace ``/ck`` (each its own network). Either way camera k's images go to
``/ck/image`` (``/compressed`` for a compressed bag), so the player is the same. Camera k plays
the bag's frames shifted right by ``SHIFT_PX * k`` pixels: the cameras see different images (a
shared runner reuses the features of equal frames, which N copies of one bag would otherwise
turn into a false gain). All cameras get a frame at each tick of a rate (cameras due together).

Per layout: a warm-up, then the per-camera rates (``--rates`` divided by N) and a bisection for the
peak rate per camera: the highest at which every camera loses at most ``--max-loss`` of its frames.
Each run ends with ~/flush on every node, so its last partial clips are not lost. Figures: peak
rate per camera, resident memory of the node process(es) summed, their CPU (% of one core, summed)
during the run at the peak rate.
"""
from __future__ import annotations

import array
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Horizontal shift (pixels) between camera k's frames and camera k+1's.
SHIFT_PX = 8
#: Seconds a run waits, after ~/flush answered, for results still on their way (it ends earlier
#: once none arrived for QUIET_S).
SETTLE_S, QUIET_S = 3.0, 0.5
#: Seconds each ~/flush may take (every node finalises its cameras' partial clips).
FLUSH_TIMEOUT_S = 60.0
LAYOUTS = ("one node", "N nodes")


@dataclass
class LayoutResult:
    cameras: int
    layout: str
    peak_hz_per_camera: float | None
    rss_mb: float
    cpu_percent_at_peak: float | None
    runs: list


def camera_messages(rgb: list[np.ndarray], k: int, compressed: bool) -> list:
    """Camera k's messages: the frames shifted by SHIFT_PX * k (raw rgb8 or JPEG q90)."""
    from sensor_msgs.msg import CompressedImage

    from stemseg_core.data import image_codec as codec
    from stemseg_ros import conversions as cv

    out = []
    for im in rgb:
        im = np.ascontiguousarray(np.roll(im, SHIFT_PX * k, axis=1))
        if compressed:
            data = codec.encode_compressed(im, "jpeg", quality=90)
            out.append(CompressedImage(format=codec.compressed_format_string("jpeg"),
                                       data=array.array("B", data)))
        else:
            out.append(cv.array_to_image(im, "rgb8"))
    return out


def node_commands(n: int, layout: str, compressed: bool, args) -> list[list[str]]:
    """Command lines of the node process(es) of one layout."""
    from stemseg_ros.tools.replay_node import node_executable, parse_node_args

    params = [f"input_transport:={'compressed' if compressed else 'raw'}",
              "diagnostics_period_sec:=0.5"]
    if args.checkpoint:
        params.append(f"checkpoint:={Path(args.checkpoint).resolve()}")
    if args.device:
        params.append(f"device:={args.device}")
    params += [f"{k}:={v}" for k, v in parse_node_args(list(args.node_arg))]
    base = node_executable() + ["--ros-args"] + sum((["-p", p] for p in params), [])
    if layout == "one node":
        cams = ", ".join(f"c{k}" for k in range(n))
        return [base + ["-p", f"cameras:=[{cams}]"]]
    return [base + ["-r", f"__ns:=/c{k}"] for k in range(n)]


def flush_services(n: int, layout: str) -> list[str]:
    from stemseg_ros import names

    if layout == "one node":
        return [names.node_topic(names.FLUSH)]
    return [names.node_topic(names.FLUSH, f"/c{k}") for k in range(n)]


def output_topic(k: int, layout: str) -> str:
    from stemseg_ros import names

    if layout == "one node":
        return names.node_topic(names.camera_topic(names.INSTANCES, f"c{k}"))
    return names.node_topic(names.INSTANCES, f"/c{k}")


class Rig:
    """The node process(es) of one layout, a publisher and a result subscriber per camera."""

    def __init__(self, n: int, layout: str, compressed: bool, args, domain: int,
                 log_dir: Path | None) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        from stemseg_ros import names
        from stemseg_ros.tools.replay_node import NodeProcess

        self.n, self.layout = n, layout
        self.procs = [NodeProcess(cmd, domain, log_dir / f"node_{n}_{layout[0]}_{i}.log"
                                  if log_dir else None)
                      for i, cmd in enumerate(node_commands(n, layout, compressed, args))]
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("stemseg_bench_cameras", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        image = (names.compressed_topic(names.IMAGE) if compressed else names.IMAGE)
        self.pubs = [self.node.create_publisher(CompressedImage if compressed else Image,
                                                f"/c{k}/{image}", qos) for k in range(n)]
        self.got: list[dict[int, float]] = [{} for _ in range(n)]
        self.lock = threading.Lock()
        self.subs = [self._subscribe(k, output_topic(k, layout)) for k in range(n)]
        from std_srvs.srv import Trigger

        self._trigger = Trigger
        self.flush_clients = [self.node.create_client(Trigger, name)
                              for name in flush_services(n, layout)]
        self.last_result = time.monotonic()

    def _subscribe(self, k: int, topic: str):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message

        from stemseg_ros.msg import TrackedInstanceArray

        def on_result(raw: bytes) -> None:
            h = deserialize_message(raw, TrackedInstanceArray).header
            with self.lock:
                self.last_result = time.monotonic()
                self.got[k].setdefault(h.stamp.sec * 10**9 + h.stamp.nanosec, self.last_result)

        return self.node.create_subscription(TrackedInstanceArray, topic, on_result, QoSProfile(
            depth=1000, reliability=ReliabilityPolicy.RELIABLE), raw=True)

    def wait_ready(self, timeout: float) -> None:
        from stemseg_ros.tools.replay_node import ReplayError

        deadline = time.monotonic() + timeout
        while not (all(p.get_subscription_count() > 0 for p in self.pubs)
                   and all(s.get_publisher_count() > 0 for s in self.subs)
                   and all(c.service_is_ready() for c in self.flush_clients)):
            for p in self.procs:
                p.check_alive("before becoming active")
            if time.monotonic() > deadline:
                raise ReplayError(f"{self.layout} with {self.n} camera(s) not ready within "
                                  f"{timeout:.0f} s; log:\n{self.procs[0].tail()}")
            time.sleep(0.1)

    def play(self, msgs: list[list], hz: float, duration: float) -> dict:
        """All cameras at `hz` for `duration` s; per-camera received shares, CPU and RSS."""
        from stemseg_ros.tools.bench_measure import proc_times

        with self.lock:
            self.got = [{} for _ in range(self.n)]
        cpu0 = sum(proc_times(p.pid)[0] for p in self.procs)
        t0 = time.monotonic()
        frames = max(1, int(round(hz * duration)))
        sent: list[list[int]] = [[] for _ in range(self.n)]
        for i in range(frames):
            delay = t0 + i / hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time_ns()
            for k, pub in enumerate(self.pubs):
                msg = msgs[k][i % len(msgs[k])]
                stamp = now + k  # distinct per camera
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
                sent[k].append(stamp)
                pub.publish(msg)
        self.flush()
        wall = time.monotonic() - t0
        times = [proc_times(p.pid) for p in self.procs]
        with self.lock:
            shares = [sum(s in self.got[k] for s in sent[k]) / len(sent[k])
                      for k in range(self.n)]
        return {"rate_hz": hz, "sent_per_camera": frames, "received_share": shares,
                "cpu_percent": 100.0 * (sum(c for c, _ in times) - cpu0) / wall,
                "rss_mb": sum(r for _, r in times)}

    def flush(self) -> None:
        """~/flush on every node (the runs' last partial clips are not lost), then wait until
        results stop arriving (at most SETTLE_S)."""
        from stemseg_ros.tools.replay import wait_future

        time.sleep(0.2)  # a service call can overtake the last images
        futures = [c.call_async(self._trigger.Request()) for c in self.flush_clients]
        for f in futures:
            wait_future(f, FLUSH_TIMEOUT_S)
        end = time.monotonic() + SETTLE_S
        while time.monotonic() < end and time.monotonic() - self.last_result < QUIET_S:
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy

        for p in self.procs:
            p.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def measure_layout(n: int, layout: str, rgb: list, compressed: bool, args, domain: int,
                   log=print) -> LayoutResult:
    from stemseg_ros.tools.bench_measure import find_peak

    msgs = [camera_messages(rgb, k, compressed) for k in range(n)]
    out_dir = Path(args.out) if args.out else None
    rig = Rig(n, layout, compressed, args, domain, out_dir)
    runs: list[dict] = []
    try:
        rig.wait_ready(args.timeout)
        warm = rig.play(msgs, 1.0, 8.0)  # engines loaded or built, first clips run
        log(f"{n} camera(s), {layout}: warm-up received {warm['received_share']}")

        def measure(hz: float) -> bool:
            r = rig.play(msgs, hz, args.duration)
            runs.append(r)
            ok = min(r["received_share"]) >= 1.0 - args.max_loss
            log(f"{n} camera(s), {layout}: {hz:6.2f} Hz per camera: received "
                f"{[round(s, 3) for s in r['received_share']]}, CPU {r['cpu_percent']:.0f} %, "
                f"RSS {r['rss_mb']:.0f} MiB{'' if ok else ' (lost too many)'}")
            return ok

        fixed = {hz / n: measure(hz / n) for hz in args.rates}
        peak = find_peak(measure, [h for h, ok in fixed.items() if ok],
                         [h for h, ok in fixed.items() if not ok], args.min_rate,
                         args.search_steps)
    finally:
        rig.close()
    at_peak = [r for r in runs if peak is not None and r["rate_hz"] == peak]
    return LayoutResult(n, layout, peak, max(r["rss_mb"] for r in runs) if runs else 0.0,
                        at_peak[-1]["cpu_percent"] if at_peak else None, runs)


def table(results: list[LayoutResult]) -> str:
    rows = ["| cameras | layout | peak rate per camera (Hz) | all cameras (Hz) | RSS MiB | "
            "CPU % at peak |", "|---|---|---|---|---|---|"]
    for r in results:
        peak = f"{r.peak_hz_per_camera:.2f}" if r.peak_hz_per_camera else "-"
        total = f"{r.peak_hz_per_camera * r.cameras:.2f}" if r.peak_hz_per_camera else "-"
        cpu = f"{r.cpu_percent_at_peak:.0f}" if r.cpu_percent_at_peak is not None else "-"
        rows.append(f"| {r.cameras} | {r.layout.replace('N', str(r.cameras))} | {peak} | "
                    f"{total} | {r.rss_mb:.0f} | {cpu} |")
    return "\n".join(rows)


def run(args, msgtype: str, rgb: list) -> int:
    """The multi-camera mode of `stemseg bag bench` (args.cameras: the camera counts)."""
    import sys

    from stemseg_core.data.rosbag_io import COMPRESSED_MSGTYPE
    from stemseg_ros import dds
    from stemseg_ros.tools.replay_node import pick_domain_id

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.update(dds.environment(os.environ))
    compressed = msgtype == COMPRESSED_MSGTYPE
    domain = args.domain_id if args.domain_id is not None else pick_domain_id()
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.cameras:
        for layout in LAYOUTS:
            if n == 1 and layout == "N nodes":
                continue  # the same as one node with one camera
            results.append(measure_layout(n, layout, rgb, compressed, args, domain,
                                          log=lambda m: print(m, file=sys.stderr)))
    text = table(results)
    print(text)
    if args.out:
        out = Path(args.out)
        (out / "bench_cameras.json").write_text(json.dumps([asdict(r) for r in results],
                                                           indent=2) + "\n")
        (out / "bench_cameras.md").write_text(f"# Cameras benchmark: {Path(args.bag).name}\n\n"
                                              f"{text}\n")
    return 0
