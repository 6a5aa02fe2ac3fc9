"""The perception node as a child process of a replay (``stemseg bag eval``, ``bench``).

It runs as on a robot: its own process, started as ``ros2 run stemseg_ros perception`` would,
in a private ROS domain, its output in a log file.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from stemseg_ros import names

#: The node's own parameters in lockstep: nothing is skipped, dropped or finalised by a timer
#: (max_input_rate -1: every frame goes to the model); reliable QoS and queues deeper than the
#: frames a lockstep player sends ahead (T at most).
LOCKSTEP_PARAMS = ("qos_reliability:=reliable", "idle_flush_sec:=0.0", "gap_reset_sec:=0.0",
                   "max_queue_clips:=1000", "qos_depth:=100", "max_input_rate:=-1.0")


class ReplayError(RuntimeError):
    """The replay could not run (node did not start, died, ...); the message says why."""


def node_executable() -> list[str]:
    """The node's executable: the install space's ``lib/stemseg_ros/perception`` (what ``ros2
    run`` starts), else the module run by this Python."""
    exe = None
    try:
        from ament_index_python.packages import get_package_prefix

        cand = Path(get_package_prefix(names.PACKAGE)) / "lib" / names.PACKAGE / names.EXECUTABLE
        exe = str(cand) if cand.is_file() else None
    except (ImportError, LookupError):  # no ament index / package not found (a KeyError)
        pass
    exe = exe or shutil.which(f"stemseg-{names.EXECUTABLE}")
    if exe is None:
        return [sys.executable, "-c",
                "import sys; from stemseg_ros.node import main; sys.exit(main())"]
    return [exe] if os.access(exe, os.X_OK) else [sys.executable, exe]


def parse_node_args(node_args: list[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` strings -> (name, value); a malformed one is a ReplayError."""
    pairs = []
    for kv in node_args:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip():
            raise ReplayError(f"--node-arg {kv!r}: expected NAME=VALUE")
        pairs.append((k.strip(), v.strip()))
    return pairs


def node_command(topic: str, compressed: bool, *, checkpoint: str | None = None,
                 device: str | None = None, lockstep: bool = False,
                 diagnostics_period: float | None = None,
                 node_args: list[str] = ()) -> list[str]:
    """The node's command line: its input remapped to ``topic``, the given parameters
    (``node_args`` last, so they win)."""
    params = [f"input_transport:={'compressed' if compressed else 'raw'}"]
    if checkpoint:
        params.append(f"checkpoint:={Path(checkpoint).resolve()}")
    if device:
        params.append(f"device:={device}")
    if lockstep:
        params += LOCKSTEP_PARAMS
    if diagnostics_period is not None:
        params.append(f"diagnostics_period_sec:={diagnostics_period}")
    params += [f"{k}:={v}" for k, v in parse_node_args(list(node_args))]
    cmd = node_executable() + ["--ros-args"]
    for p in params:
        cmd += ["-p", p]
    image = names.compressed_topic(names.IMAGE) if compressed else names.IMAGE
    return cmd + ["-r", f"{image}:={topic}"]


def pick_domain_id() -> int:
    """A domain ID unlikely to collide with other runs on this machine (101..215)."""
    return 101 + (os.getpid() * 7 + int(time.time())) % 115


class NodeProcess:
    """The perception node as a child process (own session), its output in a log file."""

    def __init__(self, cmd: list[str], domain_id: int, log_path: Path | None):
        self.cmd = cmd
        self.log_path = log_path
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1")
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        if not self.log_path or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def check_alive(self, when: str) -> None:
        """Raise a ReplayError with the log's tail when the node has exited."""
        if not self.alive():
            raise ReplayError(f"the node exited with code {self.proc.returncode} {when}; its "
                              f"log:\n{self.tail()}")

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
