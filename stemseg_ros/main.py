"""Process entry of the perception node: spin until SIGINT/SIGTERM, then stop cleanly.

rclpy's own signal handlers shut the context down at once, so results still in the tracker
could not be published ("publisher's context is invalid"); here the signal only ends the spin
loop, the node stops its worker (publishing what it can within SIGNAL_STOP_SEC), and then the
context goes. The process then ends at once (os._exit after flushing), which keeps the whole
stop under 2 s.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from stemseg_ros.guard import log_limited, reason


class RosLogHandler(logging.Handler):
    """Forwards the library's `logging` records (stemseg_core) to the node's ROS logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)  # one call site per level: rclpy insists on that
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(msg)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(msg)
        else:
            self.ros_logger.info(msg)


def bridge_logging(ros_logger: Any) -> None:
    lib = logging.getLogger("stemseg_core")
    lib.setLevel(logging.INFO)
    lib.propagate = False
    lib.addHandler(RosLogHandler(ros_logger))


#: Seconds one executor turn waits for work before the stop flag is checked again.
SPIN_SEC = 0.1


def spin_until(executor: Any, stop: threading.Event, logger: Any) -> int:
    """Spin `executor` until `stop` is set or ROS shuts down; returns the turns lost to a race.

    When an entity is destroyed from another thread (with a multi-threaded executor: a lifecycle
    transition destroying the subscription and its QoS event handlers) while this thread builds
    the next wait set from it, rclpy raises InvalidHandle here (ros2/rclpy#1206, #1284). The
    node's one executor thread runs its transitions itself, but a component may spin it
    otherwise: the destroyed entity is gone from the next wait set, so the turn is dropped and
    spinning goes on; it must not end the node.

    Any other exception out of a turn is a callback that raised, and the node's own callbacks
    catch theirs (guard.py): what is left is rclpy's, e.g. its parameter service raising
    ValueError on a ParameterValue type it does not know, which any peer can send. It is logged
    (rate-limited, a short prefix) and spinning goes on: a peer's request never ends the node."""
    lost = 0
    while not stop.is_set() and rclpy.ok(context=executor.context):
        try:
            executor.spin_once(timeout_sec=SPIN_SEC)
        except InvalidHandle as e:
            lost += 1
            logger.debug(f"executor turn skipped: an entity was destroyed while the wait set "
                         f"was built ({e}); {lost} so far")
        except Exception as e:  # noqa: BLE001 - see above
            lost += 1
            log_limited(logger, "error", "executor", f"a callback raised, the request is dropped "
                        f"and the node goes on: {reason(e)}")
    return lost


def run(node_class: Any, args: list[str] | None = None) -> int:
    """Run a node of `node_class` until SIGINT/SIGTERM; ends the process (exit status 0)."""
    from stemseg_ros import dds, memory
    from stemseg_ros.model_holder import share_dir

    arenas = memory.limit_malloc_arenas()  # before any thread starts (DDS, executor, worker)
    # the node's own Fast DDS profile, before the DDS participant exists
    os.environ.update(dds.environment(os.environ, share_dir(), dds.NODE_PROFILE))
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = node_class()
    bridge_logging(node.get_logger())
    if arenas:
        node.get_logger().debug(f"glibc malloc arenas capped at {arenas} (MALLOC_ARENA_MAX)")
    # One executor thread: a MultiThreadedExecutor's pool slowed the worker (figures in
    # docs/experiments.md); nothing in the node blocks the executor for long (~/flush is a
    # coroutine).
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value and not stop.is_set():
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        spin_until(executor, stop, node.get_logger())
    finally:
        node.shutdown_now()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    # Everything is stopped and published; tearing down the interpreter (torch and its thread
    # pools) would take seconds more, past the 2 s a supervisor allows after SIGTERM.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
