"""`stemseg bag eval`: replay a rosbag's image topic through the perception node and score it.

The node runs as its own process (``stemseg-perception``) on a private ROS_DOMAIN_ID; this
process is the player (publishes the bag's serialized messages unchanged) and the collector
(subscribes ``/stemseg_perception/instances``, optionally ``~/overlay`` for ``--record``).

Modes:
- ``--rate R``: frame k is sent at R x its bag timing (log time since the first frame), like
  ``ros2 bag play -r R``; frames the node drops are counted as lost.
- ``--lockstep``: the node never waits for nor drops a frame. The node's tracker returns the
  frames of a clip when the clip is complete (T frames first, then every T - Tc), so at most T
  (at the start) or T - Tc frames are sent ahead of the last result; the node's input queue and
  QoS depth are raised above that (reliable QoS), and its idle flush and gap reset are switched
  off, so the results equal `stemseg infer` on the same frames.
At the end ``~/flush`` finalises the partial clip. Results are matched to frames by header stamp.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from stemseg_core.data.rosbag_io import (
    COMPRESSED_MSGTYPE,
    BagError,
    BagImage,
    BagImageReader,
    read_frame_index,
    to_rgb8,
)
from stemseg_core.inference.types import FrameResult
from stemseg_ros.msg import TrackedInstanceArray

NODE_NAME = "stemseg_perception"
NODE_EXECUTABLE = "stemseg-perception"
ACTIVE_STATE_ID = 3  # lifecycle_msgs/State.PRIMARY_STATE_ACTIVE
#: /diagnostics period asked of the node in lockstep: its frames_in counter confirms that the
#: last frame was taken before ~/flush is called (a service call can overtake a topic message).
LOCKSTEP_DIAG_PERIOD = 0.1
#: Seconds the node may report a state other than active (after its autostart) before we give up.
NOT_ACTIVE_GRACE_S = 3.0


class ReplayError(RuntimeError):
    """The replay could not run (node did not start, died, ...); the message says why."""


@dataclass
class ReplayOptions:
    topic: str
    msgtype: str
    lockstep: bool = False
    rate: float = 1.0
    checkpoint: str | None = None
    device: str | None = None
    node_args: list[str] = field(default_factory=list)
    domain_id: int | None = None
    timeout: float = 120.0
    record: str | None = None
    node_log: Path | None = None
    clip: tuple[int, int] | None = None  # (T, Tc); read from the checkpoint when None


@dataclass
class ReplayOutcome:
    """Per bag frame (bag order): header stamp, send time, result and its arrival (seconds
    since the first send)."""

    stamps_ns: list[int]
    send_s: list[float | None]
    recv_s: list[float | None]
    results: list[FrameResult | None]
    wall_s: float
    unmatched: int
    duplicates: int
    node_command: list[str]
    lost_reason: str = ""
    node_stats: dict[str, str] = field(default_factory=dict)
    #: (seconds since the first send, node RSS in MiB), from the node's /diagnostics
    memory_mb: list[tuple[float, float]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# node process

def node_command(opts: ReplayOptions) -> list[str]:
    exe = shutil.which(NODE_EXECUTABLE)
    if exe is None:
        cand = Path(sys.executable).with_name(NODE_EXECUTABLE)
        exe = str(cand) if cand.is_file() else None
    if exe is not None and not os.access(exe, os.X_OK):
        exe = None
    base = [exe] if exe else [sys.executable, "-c",
                              "import sys; from stemseg_ros.node import main; sys.exit(main())"]
    compressed = opts.msgtype == COMPRESSED_MSGTYPE
    params = [f"input_transport:={'compressed' if compressed else 'raw'}"]
    if opts.checkpoint:
        params.append(f"checkpoint:={Path(opts.checkpoint).resolve()}")
    if opts.device:
        params.append(f"device:={opts.device}")
    if opts.lockstep:
        params += ["qos_reliability:=reliable", "idle_flush_sec:=0.0", "gap_reset_sec:=0.0",
                   "max_queue_clips:=1000", "qos_depth:=100",
                   f"diagnostics_period_sec:={LOCKSTEP_DIAG_PERIOD}"]
    for kv in opts.node_args:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise ReplayError(f"--node-arg {kv!r}: expected NAME=VALUE")
        params.append(f"{k.strip()}:={v.strip()}")
    cmd = base + ["--ros-args"]
    for p in params:
        cmd += ["-p", p]
    cmd += ["-r", f"{'image/compressed' if compressed else 'image'}:={opts.topic}"]
    return cmd


def pick_domain_id() -> int:
    """A domain ID unlikely to collide with other runs on this machine (101..215)."""
    return 101 + (os.getpid() * 7 + int(time.time())) % 115


def clip_geometry(opts: ReplayOptions) -> tuple[int, int]:
    """(T, Tc) the node will use: the checkpoint's config with the node-arg overrides."""
    if opts.clip is not None:
        return opts.clip
    if not opts.checkpoint:
        raise ReplayError("--lockstep needs --checkpoint (to know the node's clip length)")
    from stemseg_core.checkpoint import load_checkpoint

    cfg, _ = load_checkpoint(opts.checkpoint)
    T, Tc = int(cfg.model.clip_length), int(cfg.inference.clip_overlap)
    for kv in opts.node_args:
        k, _, v = kv.partition("=")
        if k.strip() == "clip_length" and int(v) > 0:
            T = int(v)
        elif k.strip() == "clip_overlap" and int(v) >= 0:
            Tc = int(v)
    return T, Tc


class NodeProcess:
    """The perception node as a child process, its output in a log file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path | None):
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        if not self.log_path or not self.log_path.is_file():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> int | None:
        """SIGINT (clean shutdown), then SIGTERM, then SIGKILL; returns the exit code."""
        p = self.proc
        for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if p.poll() is not None:
                break
            try:
                p.send_signal(sig)
                p.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return p.poll()


# --------------------------------------------------------------------------------------------
# player + collector

class _Collector:
    """Receives ~/instances (serialized) and matches them to sent frames by stamp."""

    def __init__(self, recorder=None):
        self.stamp_index: dict[int, int] = {}
        self.recv_s: list[float | None] = []
        self.msgs: list[object | None] = []
        self.unmatched = 0
        self.duplicates = 0
        self.received = 0
        self.cond = threading.Condition()
        self.recorder = recorder
        self.node_stats: dict[str, str] = {}
        #: (monotonic time, node RSS in MiB) from each /diagnostics message of the node
        self.memory: list[tuple[float, float]] = []

    def expect(self, stamp_ns: int) -> int:
        """Register the stamp of a frame about to be sent; returns its index."""
        with self.cond:
            if stamp_ns in self.stamp_index:
                raise ReplayError(
                    f"two images in the bag have the header stamp {stamp_ns} ns: results cannot "
                    f"be matched to frames by stamp")
            i = len(self.msgs)
            self.stamp_index[stamp_ns] = i
            self.msgs.append(None)
            self.recv_s.append(None)
            return i

    def on_instances(self, raw: bytes) -> None:
        t = time.monotonic()
        msg = deserialize_message(raw, TrackedInstanceArray)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self.recorder is not None:
            self.recorder.write("instances", stamp, raw)
        with self.cond:
            i = self.stamp_index.get(stamp)
            if i is None:
                self.unmatched += 1
            elif self.msgs[i] is not None:
                self.duplicates += 1
            else:
                self.msgs[i] = msg
                self.recv_s[i] = t
                self.received += 1
            self.cond.notify_all()

    def on_diagnostics(self, msg) -> None:
        """Keep the node's pipeline counters (frames_in, dropped_frames, ...)."""
        for st in msg.status:
            if st.name.startswith(f"{NODE_NAME}:"):
                values = {kv.key: kv.value for kv in st.values}
                with self.cond:
                    self.node_stats = values
                    try:
                        self.memory.append((time.monotonic(), float(values["memory_rss_mb"])))
                    except (KeyError, ValueError):
                        pass
                    self.cond.notify_all()

    def node_count(self, key: str) -> int:
        try:
            return int(self.node_stats.get(key, ""))
        except ValueError:
            return -1

    def on_overlay(self, raw: bytes) -> None:
        if self.recorder is not None:
            from sensor_msgs.msg import Image

            msg = deserialize_message(raw, Image)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.recorder.write("overlay", stamp, raw)


class OutputRecorder:
    """Writes the node's outputs to a new rosbag2 (MCAP) with rosbags; our msg types registered
    from the .msg files."""

    def __init__(self, path: str | Path, instances_topic: str, overlay_topic: str):
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        self.typestore = get_typestore(Stores.ROS2_KILTED)
        types = {}
        msg_dir = _msg_dir()
        for name in ("TrackedInstance", "TrackedInstanceArray"):
            text = (msg_dir / f"{name}.msg").read_text()
            types.update(get_types_from_msg(text, f"stemseg_ros/msg/{name}"))
        self.typestore.register(types)
        self.path = Path(path)
        try:
            self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
        except WriterError as e:
            raise BagError(f"--record: cannot create {self.path}: {e}") from None
        self.conns = {
            "instances": self.writer.add_connection(
                instances_topic, "stemseg_ros/msg/TrackedInstanceArray",
                typestore=self.typestore),
            "overlay": self.writer.add_connection(overlay_topic, "sensor_msgs/msg/Image",
                                                  typestore=self.typestore),
        }
        self.counts = {k: 0 for k in self.conns}
        self.lock = threading.Lock()

    def write(self, kind: str, stamp_ns: int, raw: bytes) -> None:
        """Log time = the source image's stamp, so the outputs line up with the input bag."""
        with self.lock:
            if self.writer is not None:
                self.writer.write(self.conns[kind], stamp_ns, raw)
                self.counts[kind] += 1

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None


def _msg_dir() -> Path:
    here = Path(__file__).resolve().parents[1] / "msg"
    if (here / "TrackedInstanceArray.msg").is_file():
        return here
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("stemseg_ros")) / "msg"


def _msg_class(msgtype: str):
    from sensor_msgs.msg import CompressedImage, Image

    return CompressedImage if msgtype == COMPRESSED_MSGTYPE else Image


def _wait_future(future, timeout: float) -> object | None:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout):
        return None
    return future.result()


def replay(frames: Iterable[BagImage], opts: ReplayOptions, log=print) -> ReplayOutcome:
    """Start the node, play ``frames`` (bag order; streamed, e.g. a BagImageReader) to it,
    collect the results and stop it (see the module doc)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.srv import GetState
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    window = None
    if opts.lockstep:
        T, Tc = clip_geometry(opts)
        window = (T, max(1, T - Tc))
    domain = opts.domain_id if opts.domain_id is not None else pick_domain_id()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    cmd = node_command(opts)
    instances_topic = f"/{NODE_NAME}/instances"
    overlay_topic = f"/{NODE_NAME}/overlay"
    recorder = OutputRecorder(opts.record, instances_topic, overlay_topic) if opts.record \
        else None
    collector = _Collector(recorder)
    send_s: list[float | None] = []
    stamps: list[int] = []

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("stemseg_bag_player", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, name="bag-eval-spin", daemon=True)
    spin.start()
    proc = None
    lost_reason = ""
    t_first = None
    try:
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        pub = node.create_publisher(_msg_class(opts.msgtype), opts.topic, pub_qos)
        flush_cli = node.create_client(Trigger, f"/{NODE_NAME}/flush")
        state_cli = node.create_client(GetState, f"/{NODE_NAME}/get_state")
        node.create_subscription(DiagnosticArray, "/diagnostics", collector.on_diagnostics, 10)
        proc = NodeProcess(cmd, env, opts.node_log)
        log(f"started the node (ROS_DOMAIN_ID={domain}): {' '.join(cmd)}")

        # -- wait until active and connected --------------------------------------------------
        deadline = time.monotonic() + opts.timeout
        subs = []
        not_active_since = None
        while True:
            if not proc.alive():
                raise ReplayError(f"the node exited with code {proc.proc.returncode} before "
                                  f"becoming active; its log:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise ReplayError(f"the node did not become active within {opts.timeout:.0f} s "
                                  f"(subscribers on {opts.topic}: "
                                  f"{pub.get_subscription_count()}); its log:\n{proc.tail()}")
            if not subs and node.count_publishers(instances_topic) > 0:
                infos = node.get_publishers_info_by_topic(instances_topic)
                rel = (infos[0].qos_profile.reliability if infos
                       else ReliabilityPolicy.RELIABLE)
                sub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                                     reliability=rel, durability=DurabilityPolicy.VOLATILE)
                subs.append(node.create_subscription(
                    TrackedInstanceArray, instances_topic, collector.on_instances, sub_qos,
                    raw=True))
                if recorder is not None:
                    subs.append(node.create_subscription(Image, overlay_topic,
                                                         collector.on_overlay, sub_qos,
                                                         raw=True))
            # Both ends must have matched: our writer the node's reader, and the node's reader
            # our writer (its diagnostics say so); otherwise the first frames can be lost.
            ready = (subs and pub.get_subscription_count() > 0
                     and all(s.get_publisher_count() > 0 for s in subs)
                     and collector.node_count("input_publishers") > 0)
            if state_cli.service_is_ready():
                # the node serves get_state only after its autostart transitions are done
                res = _wait_future(state_cli.call_async(GetState.Request()), 5.0)
                if res is not None and res.current_state.id != ACTIVE_STATE_ID:
                    if not_active_since is None:
                        not_active_since = time.monotonic()
                    elif time.monotonic() - not_active_since > NOT_ACTIVE_GRACE_S:
                        raise ReplayError(
                            f"the node is up but '{res.current_state.label}', not active (its "
                            f"configure/activate failed, or --node-arg autostart=false); its "
                            f"log:\n{proc.tail()}")
                ready = ready and res is not None and res.current_state.id == ACTIVE_STATE_ID
            if ready:
                break
            time.sleep(0.05)
        log(f"node active; playing "
            f"({'lockstep' if opts.lockstep else f'{opts.rate:g}x'})")

        # -- play -----------------------------------------------------------------------------
        t_first = time.monotonic()
        log0 = None
        stall = opts.timeout
        for i, fr in enumerate(frames):
            if log0 is None:  # timing starts when the first frame is in hand
                log0, t_first = fr.log_time_ns, time.monotonic()
            if window is not None:
                def may_send(i=i):
                    ahead = window[0] if collector.received == 0 else window[1]
                    return i - collector.received < ahead or not proc.alive()

                waited_until = time.monotonic() + stall
                ok = False
                while not ok and time.monotonic() < waited_until:
                    with collector.cond:
                        ok = collector.cond.wait_for(may_send, timeout=0.5)
                if not proc.alive():
                    raise ReplayError(f"the node died during the replay; its log:\n"
                                      f"{proc.tail()}")
                if not ok:
                    lost_reason = (f"no result for {stall:.0f} s in lockstep after frame {i} "
                                   f"was due; stopped sending")
                    log(f"warning: {lost_reason}")
                    break
            else:
                target = t_first + (fr.log_time_ns - log0) / 1e9 / opts.rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not proc.alive():
                    raise ReplayError(f"the node died during the replay; its log:\n"
                                      f"{proc.tail()}")
            collector.expect(fr.stamp_ns)
            stamps.append(fr.stamp_ns)
            send_s.append(time.monotonic())
            pub.publish(fr.raw)

        # -- flush and wait for the last results ---------------------------------------------
        n_sent = len(send_s)
        if n_sent == 0:
            raise ReplayError("the bag's image topic has no messages")
        if opts.lockstep:
            # the node must have taken the last frame before the flush request reaches it
            until = time.monotonic() + min(opts.timeout, 30.0)
            with collector.cond:
                taken = collector.cond.wait_for(
                    lambda: collector.node_count("frames_in") >= n_sent,
                    timeout=max(0.0, until - time.monotonic()))
            if taken:
                time.sleep(2 * LOCKSTEP_DIAG_PERIOD)
            else:
                log("warning: the node's /diagnostics did not confirm the last frame; "
                    "flushing anyway")
        if flush_cli.wait_for_service(timeout_sec=5.0):
            res = _wait_future(flush_cli.call_async(Trigger.Request()), opts.timeout)
            if res is None or not res.success:
                log(f"warning: ~/flush did not succeed: {getattr(res, 'message', 'timeout')}")
        else:
            log("warning: the node offers no ~/flush service; waiting for its idle flush")
        deadline = time.monotonic() + opts.timeout
        last_change, last_count = time.monotonic(), -1
        settle = 3.0 if opts.lockstep else 5.0
        while True:
            with collector.cond:
                collector.cond.wait(0.2)
                got = collector.received
            now = time.monotonic()
            if got != last_count:
                last_change, last_count = now, got
            if got >= n_sent or now > deadline or now - last_change > settle:
                break
        t_end = max([t for t in collector.recv_s if t is not None], default=time.monotonic())
    finally:
        if proc is not None:
            code = proc.stop()
            if code not in (0, None, -signal.SIGINT, 130):
                log(f"note: the node exited with code {code}")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        if recorder is not None:
            recorder.close()
            log(f"recorded {recorder.counts['instances']} instances and "
                f"{recorder.counts['overlay']} overlay messages to {recorder.path}")

    from stemseg_ros.conversions import msg_to_frame_result

    results: list[FrameResult | None] = []
    for i, m in enumerate(collector.msgs):
        if m is None:
            results.append(None)
            continue
        fr = msg_to_frame_result(m, index=i)
        results.append(fr)
    rel_send: list[float | None] = [s - t_first for s in send_s]
    rel_recv = [None if r is None else r - t_first for r in collector.recv_s]
    return ReplayOutcome(stamps, rel_send, rel_recv, results, t_end - t_first, collector.unmatched,
                         collector.duplicates, cmd, lost_reason, dict(collector.node_stats),
                         [(t - t_first, m) for t, m in collector.memory if t >= t_first])


# --------------------------------------------------------------------------------------------
# command

def run(args: argparse.Namespace) -> int:
    """`stemseg bag eval` (arguments: see stemseg_core/commands/bag.py)."""
    from stemseg_core.evaluation.bag_report import ReplayStats, write_report
    from stemseg_core.evaluation.kitti_results import write_kitti_mots
    from stemseg_core.visualize import draw_overlay

    out = Path(args.out)
    index = read_frame_index(args.bag)
    seq = args.seq or (index.seq if index else None) or Path(args.bag).name.split(".")[0]
    if args.gt and not (args.seq or (index and index.seq)):
        print("stemseg bag eval: error: --gt needs --seq (this bag has no frames.csv naming "
              "its KITTI sequence)", file=sys.stderr)
        return 2
    rate = 1.0 if args.rate is None else float(args.rate)
    if not args.lockstep and not rate > 0:
        print("stemseg bag eval: error: --rate must be > 0", file=sys.stderr)
        return 2
    try:
        with BagImageReader(args.bag, args.topic) as reader:
            topic, msgtype, n_bag = reader.topic.name, reader.topic.msgtype, len(reader)
            out.mkdir(parents=True, exist_ok=True)
            opts = ReplayOptions(topic=topic, msgtype=msgtype, lockstep=args.lockstep,
                                 rate=rate, checkpoint=args.checkpoint, device=args.device,
                                 node_args=list(args.node_arg), domain_id=args.domain_id,
                                 timeout=args.timeout, record=args.record,
                                 node_log=out / "node.log")
            first = _first_frame(args.bag, topic)
            enc = first.encoding if first else "?"
            print(f"bag {args.bag}: {n_bag} frames on {topic} ({msgtype.rsplit('/', 1)[-1]}, "
                  f"{enc}); sequence {seq}")
            if first is not None and msgtype != COMPRESSED_MSGTYPE:
                from stemseg_ros.conversions import ENCODINGS

                if enc not in ENCODINGS:
                    raise BagError(f"the node cannot take {enc} images (it takes "
                                   f"{', '.join(ENCODINGS)}, or CompressedImage jpeg/png)")
            from tqdm import tqdm

            frames = tqdm(reader, total=n_bag, unit="frame", desc="replay", leave=False,
                          disable=None)
            outcome = replay(frames, opts)
    except (BagError, FileNotFoundError) as e:
        print(f"stemseg bag eval: error: {e}", file=sys.stderr)
        return 2
    except ReplayError as e:
        print(f"stemseg bag eval: error: {e}", file=sys.stderr)
        return 1
    if index is not None and all(st in index.stamp_to_frame for st in outcome.stamps_ns):
        frame_numbers = [index.stamp_to_frame[st] for st in outcome.stamps_ns]
    else:
        frame_numbers = list(range(len(outcome.stamps_ns)))

    received = [r for r in outcome.results if r is not None]
    results_file = write_kitti_mots(out / f"{seq}.txt", received, frame_numbers)
    print(f"wrote {results_file}")
    metrics = None
    metrics_file = None
    if args.gt:
        from stemseg_core.evaluation.report import print_metrics, write_metrics_json
        from stemseg_core.evaluation.trackeval_kitti import evaluate_kitti_mots

        try:
            metrics = evaluate_kitti_mots(args.gt, out, sequences=[seq])
        except (FileNotFoundError, ValueError) as e:
            print(f"stemseg bag eval: error: evaluation failed: {e}", file=sys.stderr)
            return 2
        print_metrics(metrics, f"KITTI MOTS (bag replay): {seq}")
        metrics_file = write_metrics_json(metrics, out / "metrics.json")

    latency = [None if (s is None or r is None) else (r - s) * 1000.0
               for s, r in zip(outcome.send_s, outcome.recv_s)]
    mode = "lockstep" if args.lockstep else f"rate {rate:g}x"
    stats = ReplayStats(str(args.bag), topic, msgtype, mode, n_bag, outcome.send_s,
                        latency, frame_numbers, outcome.wall_s, outcome.node_command,
                        memory_mb=outcome.memory_mb,
                        extra={"sequence": seq, "checkpoint": args.checkpoint or "(node default)",
                               "device": args.device or "(node default)",
                               "unmatched results": outcome.unmatched,
                               "duplicate results": outcome.duplicates})
    if outcome.lost_reason:
        stats.extra["stopped early"] = outcome.lost_reason
    ns = outcome.node_stats
    if ns:  # the node's own counters (last /diagnostics): where lost frames were dropped
        stats.extra["node (last /diagnostics)"] = (
            f"frames_in {ns.get('frames_in', '?')}, frames_out {ns.get('frames_out', '?')}, "
            f"dropped (queue full) {ns.get('dropped_frames', '?')}, "
            f"not convertible {ns.get('conversion_errors', '?')}, "
            f"model time per clip {ns.get('model_time_per_clip_s', '?')} s")
    overlays = []
    if not args.no_overlays and received:
        picks = sorted({int(round(x)) for x in
                        _linspace(0, len(received) - 1, min(12, len(received)))})
        wanted = {received[k].index: received[k] for k in picks}
        with BagImageReader(args.bag, topic) as reader:
            for fr in reader:
                if fr.index in wanted:
                    rgb = to_rgb8(fr.decode())
                    overlays.append(draw_overlay(rgb, wanted[fr.index].instances))
                if fr.index >= max(wanted):
                    break
    report = write_report(out, stats, metrics, overlays, results_file=results_file,
                          metrics_file=metrics_file, record_bag=args.record)
    lat = stats.latency_summary()
    lat_txt = (f"latency p50 {lat['p50']:.0f} ms / p90 {lat['p90']:.0f} / p99 {lat['p99']:.0f} "
               f"/ max {lat['max']:.0f}") if lat else "no results"
    print(f"frames: {stats.frames_in_bag} in bag, {stats.sent} sent, {stats.received} received, "
          f"{len(stats.lost_frames)} lost; {stats.throughput_fps():.2f} frames/s; {lat_txt}")
    mem = stats.memory_summary()
    if mem:
        print(f"node memory (RSS): {mem['first']:.0f} MiB at the start, {mem['max']:.0f} max, "
              f"{mem['last']:.0f} at the end ({mem['growth_second_half']:+.1f} MiB over the "
              f"second half)")
    print(f"report: {report}")
    return 0 if stats.received else 1


def _first_frame(bag: str | Path, topic: str) -> BagImage | None:
    with BagImageReader(bag, topic) as reader:
        return next(iter(reader), None)


def _linspace(a: float, b: float, n: int) -> list[float]:
    if n <= 1:
        return [a]
    return [a + (b - a) * k / (n - 1) for k in range(n)]


__all__ = ["ReplayError", "ReplayOptions", "ReplayOutcome", "node_command", "replay", "run"]
