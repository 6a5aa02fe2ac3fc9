"""Helpers of the ROS tests: the node in a child process, a DDS client in the test process.

Imported by conftest.py (fixtures) and the tests.

Each test gets its own ROS_DOMAIN_ID and namespace (from the pid and a counter), so tests of
several engineers on one machine do not see each other. The child process is always stopped.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2); run `make setup`")
pytest.importorskip("stemseg_ros.msg", reason="needs the colcon-built messages (`make setup`)")

REPO = Path(__file__).resolve().parents[2]
#: Thresholds under which the random-init tiny model finds instances (its defaults find none).
LOW_THRESHOLDS = {"seediness_threshold": 0.0, "foreground_threshold": 0.0, "mask_threshold": 0.1}
_counter = itertools.count()


#: Share of a real-time camera's frames the node must answer. The issues' figure (0.95) is a
#: speed target: per the project's rules it is met in a measurement on a quiet machine
#: (``STEMSEG_MEASURE_RATE=1``, e.g. ``STEMSEG_MEASURE_RATE=1 pytest -s
#: test/ros/test_node_cameras.py test/ros/test_node_camera_720p.py``); in the suite, where other
#: tests share the 2 cores, the same tests check the node keeps up at all (half the frames).
#: On 2026-12-07 the same commit answered 69.5 % and 96.5 % of a 720p camera in two quiet runs.
REAL_TIME_SHARE = 0.95 if os.environ.get("STEMSEG_MEASURE_RATE") else 0.5


def next_id() -> int:
    return next(_counter)


def unique_domain() -> int:
    """A ROS_DOMAIN_ID in 1..200 that differs between tests of this run and (likely) others."""
    return 1 + (os.getpid() * 7 + next(_counter) * 31) % 200


def ros_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
               RCUTILS_COLORIZED_OUTPUT="0", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
    return env


def make_frames(n: int, h: int = 64, w: int = 128) -> list[np.ndarray]:
    """A synthetic sequence: two coloured rectangles moving over a flat background, RGB uint8."""
    frames = []
    for i in range(n):
        img = np.full((h, w, 3), (40, 60, 80), np.uint8)
        img[10:30, 5 + 3 * i:25 + 3 * i] = (220, 30, 30)
        img[35:60, w - 28 - 2 * i:w - 8 - 2 * i] = (30, 200, 40)
        frames.append(img)
    return frames


def frames_bag(folder: Path, n: int = 6) -> Path:
    """A rosbag2 (.mcap) of ``n`` make_frames images, written as a one-sequence KITTI drive
    under ``folder`` and converted as `stemseg bag from-kitti` does; returns the bag's path."""
    import cv2

    from stemseg_core.data import rosbag_io as rio

    root = folder / "kitti" / "training" / "image_02" / "0001"
    root.mkdir(parents=True)
    for k, rgb in enumerate(make_frames(n)):
        cv2.imwrite(str(root / f"{k:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    bag = folder / "drive.mcap"
    rio.write_kitti_bag(folder / "kitti", "0001", bag, progress=False)
    return bag


def offline_results(checkpoint, frames, thresholds=None):
    """What StreamingTracker gives on `frames` (push all, then flush): the reference (flip test
    off, as the node runs by default whatever the checkpoint says)."""
    from stemseg_core.inference.tracker import StreamingTracker

    tr = StreamingTracker.from_checkpoint(checkpoint, device="cpu",
                                          overrides=["inference.flip_test=false"])
    tr.set_thresholds(**(thresholds or {}))
    out = []
    for i, f in enumerate(frames):
        out += tr.push(f, i)
    out += tr.flush()
    return out


def perception_command() -> list[str]:
    """The installed executable, as `ros2 run stemseg_ros perception` would start it."""
    exe = shutil.which("stemseg-perception")
    if exe is None:
        installed = REPO / "install" / "stemseg_ros" / "lib" / "stemseg_ros" / "perception"
        if not installed.exists():
            pytest.skip("stemseg-perception is not installed; run `make setup`")
        exe = str(installed)
    return [exe] if os.access(exe, os.X_OK) else [sys.executable, exe]


#: Node parameters every test node runs with unless the test sets backend or precision itself
#: (given last, so a --params-file of the test does not replace them).
TEST_BACKEND = ["-p", "backend:=torch", "-p", "precision:=fp32"]


def shm_segments_mapped_by(pid: int) -> set[str]:
    """The Fast DDS shared-memory segments (/dev/shm/fastdds_<id>, not the shared port files)
    that process ``pid`` has mapped: its own segment and those of peers it received from."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    paths = {ln.split(maxsplit=5)[-1] for ln in lines if "/dev/shm/fastdds_" in ln}
    return {p for p in paths if not Path(p).name.startswith("fastdds_port")}


def orphaned_segments(paths: set[str]) -> list[str]:
    """Those of ``paths`` still in /dev/shm that no live process maps: left by a process that
    ended without destroying its DDS participant (they stay until the next reboot)."""
    left = {p for p in paths if Path(p).exists()}
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        left = {p for p in left if p not in text}
    return sorted(left)


class NodeProcess:
    """The perception node in a child process; output goes to `log_path`."""

    def __init__(self, ros_args: list[str], domain_id: int, log_path: Path) -> None:
        # eager torch unless a test says otherwise: the tests compare with the offline tracker
        # and cannot wait for engine builds (the default is checked in test_params.py)
        own = any(a.startswith(("backend:=", "precision:=")) for a in ros_args)
        self.cmd = perception_command() + ["--ros-args", *ros_args,
                                           *([] if own else TEST_BACKEND)]
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=ros_env(domain_id),
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            time.sleep(0.1)
        return False

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


class RosClient:
    """A plain rclpy node in the test process, in its own context and domain."""

    def __init__(self, domain_id: int, name: str = "stemseg_test_client") -> None:
        from rclpy.executors import SingleThreadedExecutor

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f"{name}_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0)))

    def spin_until(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        """Call a service, waiting for it to appear first; None on timeout."""
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return None
            future = client.call_async(request)
            self.spin_until(future.done, timeout)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
