"""``<seq>.positions.txt`` beside the KITTI MOTS results (``stemseg infer --positions``): the 3-D
position and size of each tracked instance from the sequence's depth images (else its LiDAR
scans), lifted by the same :class:`~.tracks3d.TrackLifter` as the node.

One line per instance with a position, space-separated::

    frame track_id class_id x y z size_x size_y size_z

metres, in the colour camera's optical frame (x right, y down, z forward), as the node's
``position`` / ``size``. Instances are the tracker's (before ``--min-area`` /
``--min-track-length``), so every line's (frame, track_id) is one of the results'.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stemseg_core.geometry.tracks3d import TrackLifter

HEADER = "# frame track_id class_id x y z size_x size_y size_z (metres, camera optical frame)"


def sensors_of(seq_dir: Path, frames: Sequence[Path]) -> str | None:
    """"depth" or "velodyne" when every frame has that file and the sequence has a calibration
    (P2; LiDAR also Tr_velo_cam); None otherwise."""
    from stemseg_core.data.kitti_camera import find_calibration, read_calib
    from stemseg_core.data.kitti_layout import sensor_file

    calib_file = find_calibration(seq_dir)
    if calib_file is None or "P2" not in (calib := read_calib(calib_file)):
        return None
    for sensor in ("depth", "velodyne"):
        if sensor == "velodyne" and "Tr_velo_cam" not in calib:
            continue
        if frames and all(sensor_file(seq_dir, sensor, f) is not None for f in frames):
            return sensor
    return None


def write_positions(path: Path, seq_dir: Path, frames: Sequence[Path], results: Sequence,
                    numbers: Sequence[int], sensor: str) -> tuple[Path, int, int]:
    """Lift each FrameResult (``results[k].index`` = the frame's position in ``frames``) and
    write the file; returns (path, instances, instances with a position)."""
    import cv2

    from stemseg_core.data.kitti_calib import lidar_to_camera2
    from stemseg_core.data.kitti_camera import find_calibration, read_calib
    from stemseg_core.data.kitti_layout import sensor_file
    from stemseg_core.geometry.depth import intrinsics_of

    calib = read_calib(find_calibration(seq_dir))
    K, T = intrinsics_of(calib["P2"]), lidar_to_camera2(calib)  # with R_rect, P2's offset
    lifter, lines, total, placed = TrackLifter(), [HEADER], 0, 0
    for res in sorted(results, key=lambda r: r.index):
        f = sensor_file(seq_dir, sensor, frames[res.index])
        stamp = numbers[res.index] * 0.1  # KITTI's 10 Hz: the velocities are not written
        if sensor == "depth":
            depth = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            tracks = lifter.update(res.instances, stamp, depth=depth, K=K)
        else:
            pts = np.fromfile(f, np.float32).reshape(-1, 4)
            tracks = lifter.update(res.instances, stamp, points=pts, velo_to_cam=T, K=K)
        total += len(tracks)
        for inst, t in zip(res.instances, tracks):
            if not t.object.has_position:
                continue
            placed += 1
            vals = " ".join(f"{v:.3f}" for v in (*t.object.position, *t.object.size))
            lines.append(f"{numbers[res.index]} {inst.track_id} {inst.class_id} {vals}")
    path.write_text("\n".join(lines) + "\n")
    return path, total, placed
