"""Process entry of the perception node: spin until SIGINT/SIGTERM, then stop cleanly.

rclpy's own signal handlers shut the context down at once, so results still in the tracker
could not be published ("publisher's context is invalid"); here the signal only ends the spin
loop, the node stops its worker (publishing what it can within SIGNAL_STOP_SEC), and then the
context goes.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Any

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions


def run(node_class: Any, args: list[str] | None = None) -> int:
    from stemseg_ros import dds
    from stemseg_ros.model import share_dir

    os.environ.update(dds.environment(os.environ, share_dir()))  # before the DDS participant
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = node_class()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value and not stop.is_set():
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.shutdown_now()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
