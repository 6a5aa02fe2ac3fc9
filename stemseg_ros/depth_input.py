"""3-D per instance in the node (issue 36): the depth image / LiDAR scan and camera_info
subscriptions, pairing by stamp, and the core's TrackLifter on each published frame.

- ``use_depth``: ``depth`` (sensor_msgs/Image 16UC1 millimetres or 32FC1 metres, registered to
  the colour image; default ``<image ns>/depth/image_raw`` unless ``depth`` is remapped).
- ``use_lidar``: ``points`` (sensor_msgs/PointCloud2 with float32 x y z), moved to the camera
  frame on arrival with ``lidar_to_camera`` or the ``calib_file``'s P2 @ R_rect @ Tr_velo_cam
  (:func:`~stemseg_core.data.kitti_calib.lidar_to_camera2`).
- ``camera_info`` (default ``<image ns>/camera_info`` unless remapped, as camera_size.py finds
  it): K, scaled to the masks' size when the two differ; until it arrives the calib file's P2.

Arrivals are kept in small bounded buffers by stamp (depth downsampled to the lifter's grid
first, points cut to those in front of the camera). When the worker publishes a frame,
:meth:`Sensors3D.lift` looks for a partner within ``sync_tolerance_sec`` (depth first) and
returns one core Track3D per instance; without one the frame is answered without 3-D. Malformed
or oversized messages are dropped and counted (``depth_dropped``, ``points_dropped``,
``camera_info_dropped`` in /diagnostics), never raised: every callback is ``guarded``.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stemseg_core.data import image_codec as codec
from stemseg_core.data.kitti_calib import lidar_to_camera2, projection_of, read_kitti_calib
from stemseg_core.geometry import TrackLifter, grid_step, intrinsics_of
from stemseg_core.geometry.depth import points_to_camera, scaled_intrinsics
from stemseg_ros.camera_size import sibling_topic
from stemseg_ros.guard import guarded, log_limited

if TYPE_CHECKING:
    from stemseg_ros.params import PerceptionParams

#: Depth images / scans kept for pairing (the worker publishes a clip's frames T frames late).
BUFFER = 64
#: Largest LiDAR scan accepted (points); a 128-beam 2048-column scan has 262144.
MAX_POINTS = 2_000_000
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
_NONE = lambda _: None  # noqa: E731 - refusal of a guarded subscription callback


def cloud_xyz(msg: Any, max_points: int = MAX_POINTS) -> np.ndarray:
    """PointCloud2 -> (N, 3) float32 x y z (non-finite points left out). ValueError for a
    cloud without float32 x/y/z, inconsistent sizes or more than `max_points` points."""
    fields = {f.name: f for f in msg.fields}
    h, w, step, row = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if h * w > max_points:
        raise ValueError(f"{h}x{w} points, more than {max_points}")
    for axis in "xyz":
        f = fields.get(axis)
        if f is None or f.datatype != _FLOAT32 or f.offset + 4 > step:
            raise ValueError(f"field {axis!r} missing or not float32 inside point_step {step}")
    data = np.frombuffer(msg.data, np.uint8)
    if w * step > row or h * row > data.size:
        raise ValueError(f"{h}x{w} points of {step} B in rows of {row} B need "
                         f"{h * row} B, data has {data.size}")
    if h * w == 0:
        return np.zeros((0, 3), np.float32)
    pts = data[:h * row].reshape(h, row)[:, :w * step].reshape(h * w, step)
    dt = np.dtype(">f4" if msg.is_bigendian else "<f4")
    xyz = np.stack([pts[:, fields[a].offset:fields[a].offset + 4].copy().view(dt)[:, 0]
                    for a in "xyz"], 1).astype(np.float32)
    return xyz[np.isfinite(xyz).all(1)]


class _ByStamp:
    """Bounded {stamp_ns: value} (oldest out first); nearest stamp within a tolerance."""

    def __init__(self, size: int = BUFFER) -> None:
        self._items: deque[tuple[int, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def put(self, stamp_ns: int, value: Any) -> None:
        with self._lock:
            self._items.append((stamp_ns, value))

    def nearest(self, stamp_ns: int, tol_ns: int) -> Any | None:
        with self._lock:
            best = min(self._items, key=lambda it: abs(it[0] - stamp_ns), default=None)
        return best[1] if best is not None and abs(best[0] - stamp_ns) <= tol_ns else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class Sensors3D:
    """Subscriptions and pairing of one active node (``start``/``stop`` with activate and
    deactivate); :meth:`lift` runs on the worker thread."""

    COUNTERS = ("depth_in", "depth_dropped", "points_in", "points_dropped",
                "camera_info_dropped", "frames_3d", "frames_without_3d")

    def __init__(self, node: Any) -> None:
        self.node = node
        self.enabled = False
        self._subs: list[Any] = []
        self._depth, self._points = _ByStamp(), _ByStamp()
        self._info: tuple[np.ndarray, tuple[int, int]] | None = None  # (K, (h, w))
        self._calib_K: np.ndarray | None = None
        self._T: np.ndarray | None = None
        self._lifter = TrackLifter()
        self._last_stamp = -1
        self._tol_ns = 0
        self._max_pixels: int | None = None
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self._lift_sec = 0.0

    def get_logger(self) -> Any:  # for `guarded`
        return self.node.get_logger()

    # -- control ---------------------------------------------------------------------------
    def start(self, p: PerceptionParams, image_topic: str, qos: Any) -> None:
        """Read the calibration and subscribe (raises ValueError/OSError: activate fails)."""
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.enabled = bool(p.use_depth or p.use_lidar)
        if not self.enabled:
            return
        self._tol_ns = int(p.sync_tolerance_sec * 1e9)
        self._max_pixels = p.max_image_pixels
        self._calib_K = self._T = None
        if p.calib_file:
            calib = read_kitti_calib(Path(p.calib_file))
            if (P := projection_of(calib)) is not None:
                self._calib_K = intrinsics_of(P)
            self._T = lidar_to_camera2(calib)  # R_rect and camera 2's offset included
        if p.lidar_to_camera:
            m = np.asarray(p.lidar_to_camera, np.float64)
            self._T = m.reshape(4, 4) if m.size == 16 else m.reshape(3, 4)
        if p.use_lidar and self._T is None:
            raise ValueError(f"use_lidar: no Tr_velo_cam in calib_file {p.calib_file!r} and no "
                             f"lidar_to_camera")
        self.reset()
        node, log = self.node, self.node.get_logger()
        topics = [("camera_info", CameraInfo, sibling_topic(node, "camera_info", image_topic,
                                                            "camera_info"), self._on_info)]
        if p.use_depth:
            topics.append(("depth", Image, sibling_topic(node, "depth", image_topic,
                                                         "depth/image_raw"), self._on_depth))
        if p.use_lidar:
            topics.append(("points", PointCloud2, node.resolve_topic_name("points"),
                           self._on_points))
        for _, msg_type, topic, cb in topics:
            self._subs.append(node.create_subscription(msg_type, topic, cb, qos))
            log.info(f"3-D input: subscribed to {topic} ({msg_type.__name__})")

    def stop(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        self.reset()

    def reset(self) -> None:
        """Forget buffered messages and the tracks' velocities (a new stream)."""
        self._depth.clear()
        self._points.clear()
        self._lifter.reset()
        self._last_stamp = -1

    def info(self) -> dict[str, str]:
        if not self.enabled:
            return {}
        out = {k: str(v) for k, v in self.counts.items()}
        out["camera_matrix"] = (f"camera_info {self._info[1][1]}x{self._info[1][0]}"
                                if self._info is not None else
                                "calib_file" if self._calib_K is not None else "none yet")
        n = self.counts["frames_3d"] + self.counts["frames_without_3d"]
        out["lift_time_per_frame_s"] = f"{self._lift_sec / n if n else 0.0:.4f}"
        return out

    def _drop(self, key: str, what: str, error: Exception) -> None:
        self.counts[key] += 1
        log_limited(self.node.get_logger(), "warning", key, f"dropped a {what} "
                    f"({self.counts[key]} so far): {type(error).__name__}: {str(error)[:200]}")

    # -- callbacks (executor thread) ---------------------------------------------------------
    @guarded("camera_info callback", _NONE)
    def _on_info(self, msg: Any) -> None:
        try:
            K = intrinsics_of(np.asarray(msg.k, np.float64))
            if not np.isfinite(K).all():
                raise ValueError("K has non-finite values")
        except ValueError as e:
            self._drop("camera_info_dropped", "camera_info", e)
            return
        self._info = (K, (int(msg.height), int(msg.width)))

    @guarded("depth callback", _NONE)
    def _on_depth(self, msg: Any) -> None:
        self.counts["depth_in"] += 1
        try:
            if msg.encoding not in DEPTH_ENCODINGS:
                raise ValueError(f"encoding {msg.encoding[:20]!r}, expected one of "
                                 f"{', '.join(DEPTH_ENCODINGS)}")
            d = codec.unpack_image(msg.encoding, msg.height, msg.width, msg.step,
                                   msg.is_bigendian, msg.data, max_pixels=self._max_pixels)
        except (ValueError, codec.ImageDecodeError) as e:
            self._drop("depth_dropped", "depth image", e)
            return
        s = grid_step(*d.shape[:2])  # the lifter samples this grid: keep only it
        self._depth.put(_stamp_ns(msg.header), np.ascontiguousarray(d[::s, ::s]))

    @guarded("points callback", _NONE)
    def _on_points(self, msg: Any) -> None:
        self.counts["points_in"] += 1
        try:
            xyz = cloud_xyz(msg)
        except ValueError as e:
            self._drop("points_dropped", "PointCloud2", e)
            return
        self._points.put(_stamp_ns(msg.header), points_to_camera(xyz, self._T, np.float32))

    # -- the worker thread ---------------------------------------------------------------------
    def lift(self, instances: list[Any], header: Any, image_size: tuple[int, int]
             ) -> list[Any] | None:
        """One core Track3D per instance of the frame with `header` (None: 3-D is off)."""
        if not self.enabled:
            return None
        t0 = time.perf_counter()
        stamp = _stamp_ns(header)
        if stamp < self._last_stamp:  # the stream went back (a bag replayed again)
            self._lifter.reset()
        self._last_stamp = stamp
        K = self._camera_matrix(image_size)
        depth = self._depth.nearest(stamp, self._tol_ns)
        points = None if depth is not None else self._points.nearest(stamp, self._tol_ns)
        kw: dict[str, Any] = {}
        if K is not None and depth is not None:
            kw = {"depth": depth, "K": K}
        elif K is not None and points is not None:
            kw = {"points": points, "velo_to_cam": np.eye(4), "K": K}
        tracks = self._lifter.update(instances, stamp * 1e-9, **kw)
        self.counts["frames_3d" if kw else "frames_without_3d"] += 1
        self._lift_sec += time.perf_counter() - t0
        return tracks

    def _camera_matrix(self, image_size: tuple[int, int]) -> np.ndarray | None:
        """K for masks of `image_size` (H, W): camera_info's (scaled when its size differs),
        else the calib file's P2, else None."""
        if self._info is None:
            return self._calib_K
        K, (h, w) = self._info
        H, W = image_size
        if h > 0 and w > 0 and (h, w) != (H, W):
            K = scaled_intrinsics(K, W / w, H / h)
        return K
