"""Replay image messages through the perception node and collect what it publishes.

The node runs as its own process (:mod:`.replay_node`) on a private ROS_DOMAIN_ID; this process
publishes the bag's serialized messages unchanged and subscribes the node's ``~/instances``
(:mod:`.replay_collect`). Pacing:

- rate R: frame k is sent at R x its bag timing (log time since the first frame), like
  ``ros2 bag play -r R``, or at a fixed frequency (``fixed_hz``); frames the node drops are lost.
- lockstep: the node neither waits for nor drops a frame. Its tracker returns the frames of a
  clip when the clip is complete (T frames first, then every T - Tc), so at most T (at the start)
  or T - Tc frames are sent ahead of the last result; the node's queue and QoS depth are raised
  above that (reliable QoS), its idle flush and gap reset are off.

At the end ``~/flush`` finalises the partial clip. Results are matched to frames by header stamp.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from stemseg_core.data.rosbag_io import COMPRESSED_MSGTYPE, BagImage
from stemseg_core.evaluation.replay_scoring import ReplayOutcome
from stemseg_ros import dds, names
from stemseg_ros.msg import TrackedInstanceArray
from stemseg_ros.tools.replay_collect import Collector, OutputRecorder
from stemseg_ros.tools.replay_node import (
    NodeProcess,
    ReplayError,
    node_command,
    parse_node_args,
    pick_domain_id,
)

ACTIVE_STATE_ID = 3  # lifecycle_msgs/State.PRIMARY_STATE_ACTIVE
#: /diagnostics period asked of the node in lockstep: its frames_in counter confirms that the
#: last frame was taken before ~/flush is called (a service call can overtake a topic message).
LOCKSTEP_DIAG_PERIOD = 0.1
#: Seconds the node may report a state other than active (after its autostart) before we give up.
NOT_ACTIVE_GRACE_S = 3.0
#: Seconds without a new result after which the last results are taken as complete.
SETTLE_S = {"lockstep": 3.0, "rate": 5.0}


@dataclass
class ReplayOptions:
    topic: str
    msgtype: str
    lockstep: bool = False
    rate: float = 1.0
    fixed_hz: float | None = None  # send at this frequency instead of the bag's timing x rate
    checkpoint: str | None = None  # None: the node's default
    device: str | None = None
    node_args: list[str] = field(default_factory=list)
    domain_id: int | None = None
    timeout: float = 120.0
    record: str | None = None
    node_log: Path | None = None
    diagnostics_period: float | None = None  # None: the node's default (lockstep: 0.1 s)

    @property
    def mode(self) -> str:
        if self.lockstep:
            return "lockstep"
        return f"{self.fixed_hz:g} Hz" if self.fixed_hz else f"rate {self.rate:g}x"


def clip_geometry(checkpoint: str, node_args: list[str]) -> tuple[int, int]:
    """(T, Tc) the node uses: ``checkpoint``'s config (the file the node loaded) with the
    node's clip_length / clip_overlap parameters from ``node_args`` applied."""
    from stemseg_core.checkpoint import load_checkpoint

    args = dict(parse_node_args(node_args))
    allow_pickle = args.get("allow_pickle", "false").lower() == "true"
    cfg, _ = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
    T, Tc = int(cfg.model.clip_length), int(cfg.inference.clip_overlap)
    if int(args.get("clip_length", 0)) > 0:
        T = int(args["clip_length"])
    if int(args.get("clip_overlap", -1)) >= 0:
        Tc = int(args["clip_overlap"])
    return T, Tc


def wait_future(future, timeout: float) -> object | None:
    """The future's result, or None when it is not done within ``timeout`` seconds."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return future.result() if done.wait(timeout) else None


class Player:
    """One node process and one player/collector node; ``close()`` stops both."""

    def __init__(self, opts: ReplayOptions, log: Callable[[str], None] = print):
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import GetState
        from sensor_msgs.msg import CompressedImage, Image
        from std_srvs.srv import Trigger

        self.opts, self.log = opts, log
        self.domain = opts.domain_id if opts.domain_id is not None else pick_domain_id()
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        # large images between processes need the shipped Fast DDS profile on both sides
        os.environ.update(dds.environment(os.environ))
        compressed = opts.msgtype == COMPRESSED_MSGTYPE
        period = opts.diagnostics_period or (LOCKSTEP_DIAG_PERIOD if opts.lockstep else None)
        self.cmd = node_command(opts.topic, compressed, checkpoint=opts.checkpoint,
                                device=opts.device, lockstep=opts.lockstep,
                                diagnostics_period=period, node_args=opts.node_args)
        self.instances_topic = names.node_topic(names.INSTANCES)
        self.overlay_topic = names.node_topic(names.OVERLAY)
        self.recorder = (OutputRecorder(opts.record, self.instances_topic, self.overlay_topic)
                         if opts.record else None)
        self.collector = Collector(self.recorder)
        self.stamps: list[int] = []
        self.send_t: list[float] = []
        self.lost_reason = ""
        self.t_first: float | None = None
        self.proc: NodeProcess | None = None
        self._subs: list = []

        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=self.domain)
        self.node = rclpy.create_node("stemseg_bag_player", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, name="replay-spin", daemon=True).start()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.pub = self.node.create_publisher(CompressedImage if compressed else Image,
                                              opts.topic, qos)
        self._image_type = Image
        self.flush_cli = self.node.create_client(Trigger, names.node_topic(names.FLUSH))
        self._trigger = Trigger
        self.state_cli = self.node.create_client(GetState, names.node_topic("~/get_state"))
        self._get_state = GetState
        self.node.create_subscription(DiagnosticArray, names.DIAGNOSTICS,
                                      self.collector.on_diagnostics, 10)

    # -- lifetime ------------------------------------------------------------------------------

    def start_node(self) -> None:
        self.proc = NodeProcess(self.cmd, self.domain, self.opts.node_log)
        self.log(f"started the node (ROS_DOMAIN_ID={self.domain}): {' '.join(self.cmd)}")

    def close(self) -> None:
        if self.proc is not None:
            code = self.proc.stop()
            if code not in (0, None, -2, 130):  # -2: ended by our SIGINT
                self.log(f"note: the node exited with code {code}")
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        if self.recorder is not None:
            self.recorder.close()
            self.log(f"recorded {self.recorder.counts['instances']} instances and "
                     f"{self.recorder.counts['overlay']} overlay messages to "
                     f"{self.recorder.path}")

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- start-up ------------------------------------------------------------------------------

    def wait_until_active(self) -> None:
        """Until the node is active and both ends of the image and result topics matched."""
        deadline = time.monotonic() + self.opts.timeout
        not_active_since = None
        while True:
            self.proc.check_alive("before becoming active")
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"the node did not become active within {self.opts.timeout:.0f} s "
                    f"(subscribers on {self.opts.topic}: {self.pub.get_subscription_count()}); "
                    f"its log:\n{self.proc.tail()}")
            self._subscribe_outputs()
            state = self._state()
            if state is not None and state.id != ACTIVE_STATE_ID:
                not_active_since = not_active_since or time.monotonic()
                if time.monotonic() - not_active_since > NOT_ACTIVE_GRACE_S:
                    raise ReplayError(
                        f"the node is up but '{state.label}', not active (its configure/"
                        f"activate failed, or --node-arg autostart=false); its log:\n"
                        f"{self.proc.tail()}")
            if state is not None and state.id == ACTIVE_STATE_ID and self._connected():
                return
            time.sleep(0.05)

    def _subscribe_outputs(self) -> None:
        """Subscribe the node's outputs once it publishes them, with its reliability."""
        if self._subs or self.node.count_publishers(self.instances_topic) == 0:
            return
        infos = self.node.get_publishers_info_by_topic(self.instances_topic)
        rel = infos[0].qos_profile.reliability if infos else ReliabilityPolicy.RELIABLE
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=rel,
                         durability=DurabilityPolicy.VOLATILE)
        self._subs.append(self.node.create_subscription(
            TrackedInstanceArray, self.instances_topic, self.collector.on_instances, qos,
            raw=True))
        if self.recorder is not None:
            self._subs.append(self.node.create_subscription(
                self._image_type, self.overlay_topic, self.collector.on_overlay, qos, raw=True))

    def _connected(self) -> bool:
        """Both ends matched: our writer the node's reader, and the node's reader our writer
        (its diagnostics say so); otherwise the first frames can be lost."""
        return bool(self._subs and self.pub.get_subscription_count() > 0
                    and all(s.get_publisher_count() > 0 for s in self._subs)
                    and self.collector.node_count("input_publishers") > 0)

    def _state(self):
        """The node's lifecycle state (served once its autostart transitions are done)."""
        if not self.state_cli.service_is_ready():
            return None
        res = wait_future(self.state_cli.call_async(self._get_state.Request()), 5.0)
        return None if res is None else res.current_state

    def lockstep_window(self) -> tuple[int, int]:
        """(frames sent ahead before the first result, after it): T and T - Tc."""
        ckpt = self.collector.node_stats.get("checkpoint") or self.opts.checkpoint
        if not ckpt:
            raise ReplayError("lockstep needs the node's clip length, but the node's "
                              "/diagnostics name no checkpoint; pass --checkpoint")
        T, Tc = clip_geometry(ckpt, self.opts.node_args)
        return T, max(1, T - Tc)

    # -- playing -------------------------------------------------------------------------------

    def new_run(self) -> None:
        """Forget the frames sent and received so far (the node keeps running)."""
        self.collector.reset()
        self.stamps, self.send_t, self.lost_reason, self.t_first = [], [], "", None

    def send(self, stamp: int, msg) -> None:
        """Publish one image (serialized bytes or a message) whose header stamp is ``stamp``."""
        if self.t_first is None:
            self.t_first = time.monotonic()
        self.collector.expect(stamp)
        self.stamps.append(stamp)
        self.send_t.append(time.monotonic())
        self.pub.publish(msg)

    def play(self, frames: Iterable[BagImage]) -> int:
        """Send ``frames`` paced as the options say; returns how many were sent."""
        window = self.lockstep_window() if self.opts.lockstep else None
        self.log(f"node active; playing ({self.opts.mode})")
        log0 = None
        for i, fr in enumerate(frames):
            if log0 is None:  # timing starts when the first frame is in hand
                log0, self.t_first = fr.log_time_ns, time.monotonic()
            if window is not None:
                if not self._wait_lockstep(i, window):
                    break
            else:
                self.wait_until(self._due(i, fr.log_time_ns - log0))
            self.send(fr.stamp_ns, fr.raw)
        if not self.send_t:
            raise ReplayError("the bag's image topic has no messages")
        return len(self.send_t)

    def _due(self, i: int, since_first_ns: int) -> float:
        if self.opts.fixed_hz:
            return self.t_first + i / self.opts.fixed_hz
        return self.t_first + since_first_ns / 1e9 / self.opts.rate

    def wait_until(self, target: float) -> None:
        """Sleep until monotonic time ``target``; a ReplayError when the node has died."""
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.proc.check_alive("during the replay")

    def _wait_lockstep(self, i: int, window: tuple[int, int]) -> bool:
        """Wait until frame ``i`` may be sent; False (and lost_reason) when results stall."""
        c = self.collector

        def may_send() -> bool:
            ahead = window[0] if c.received == 0 else window[1]
            return i - c.received < ahead or not self.proc.alive()

        until = time.monotonic() + self.opts.timeout
        ok = False
        while not ok and time.monotonic() < until:
            with c.cond:
                ok = c.cond.wait_for(may_send, timeout=0.5)
        self.proc.check_alive("during the replay")
        if not ok:
            self.lost_reason = (f"no result for {self.opts.timeout:.0f} s in lockstep after "
                                f"frame {i} was due; stopped sending")
            self.log(f"warning: {self.lost_reason}")
        return ok

    # -- the end -------------------------------------------------------------------------------

    def finish(self, settle: float | None = None) -> None:
        """Flush the node's partial clip and wait for the last results (until none came for
        ``settle`` s; default by mode)."""
        if self.opts.lockstep:
            self._confirm_last_taken()
        self.flush()
        if settle is None:
            settle = SETTLE_S["lockstep" if self.opts.lockstep else "rate"]
        self._wait_results(settle)

    def _confirm_last_taken(self) -> None:
        """The node must have taken the last frame before the flush request reaches it."""
        c, n = self.collector, len(self.send_t)
        until = time.monotonic() + min(self.opts.timeout, 30.0)
        with c.cond:
            taken = c.cond.wait_for(lambda: c.node_count("frames_in") >= n,
                                    timeout=max(0.0, until - time.monotonic()))
        if taken:
            time.sleep(2 * LOCKSTEP_DIAG_PERIOD)
        else:
            self.log("warning: the node's /diagnostics did not confirm the last frame; "
                     "flushing anyway")

    def flush(self) -> None:
        """Ask the node to finalise its partial clip (~/flush); a warning when it cannot."""
        if not self.flush_cli.wait_for_service(timeout_sec=5.0):
            self.log("warning: the node offers no ~/flush service; waiting for its idle flush")
            return
        res = wait_future(self.flush_cli.call_async(self._trigger.Request()), self.opts.timeout)
        if res is None or not res.success:
            self.log(f"warning: ~/flush did not succeed: {getattr(res, 'message', 'timeout')}")

    def _wait_results(self, settle: float) -> None:
        """Until every sent frame has its result, none came for ``settle`` s, or the timeout."""
        c, n = self.collector, len(self.send_t)
        deadline = time.monotonic() + self.opts.timeout
        last_change, last_count = time.monotonic(), -1
        while True:
            with c.cond:
                c.cond.wait(0.2)
                got = c.received
            now = time.monotonic()
            if got != last_count:
                last_change, last_count = now, got
            if got >= n or now > deadline or now - last_change > settle:
                return

    def outcome(self) -> ReplayOutcome:
        """The collected results as frame results, times relative to the first send."""
        from stemseg_ros.conversions import msg_to_frame_result

        c, t0 = self.collector, self.t_first
        results = [None if m is None else msg_to_frame_result(m, index=i)
                   for i, m in enumerate(c.msgs)]
        t_end = max([t for t in c.recv_s if t is not None], default=time.monotonic())
        return ReplayOutcome(
            list(self.stamps), [s - t0 for s in self.send_t],
            [None if r is None else r - t0 for r in c.recv_s], results, t_end - t0,
            c.unmatched, c.duplicates, list(self.cmd), self.lost_reason, dict(c.node_stats),
            [(t - t0, m) for t, m in c.memory if t >= t0])


def replay(frames: Iterable[BagImage], opts: ReplayOptions,
           log: Callable[[str], None] = print) -> ReplayOutcome:
    """Start the node, play ``frames`` (bag order; streamed, e.g. a BagImageReader), collect its
    results and stop it (see the module doc)."""
    with Player(opts, log) as player:
        player.start_node()
        player.wait_until_active()
        player.play(frames)
        player.finish()
        return player.outcome()
