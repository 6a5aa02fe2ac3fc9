"""`stemseg bag eval`'s 3-D score: a replay's masks lifted with the bag's depth images, against
the ground-truth masks lifted with the same depth (:mod:`.position_error`); a bag without depth
but with LiDAR scans (PointCloud2) is scored the same way with the scans instead
(:func:`find_sensor_topic`), the LiDAR transform composed from the sequence's calibration.

The replay sends only the colour images, so the positions scored here are what the node's
``use_depth`` path computes from the masks it published: the core's
:class:`~stemseg_core.geometry.TrackLifter` (the node's Sensors3D calls the same) on the depth
image of the same stamp, with K from the sequence's calibration (the bag's CameraInfo was written
from it). Needs the bag's ``<camera ns>/depth/image_raw`` (``stemseg synth --depth`` then
``stemseg bag from-kitti``) and the ground truth (``--gt``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stemseg_core.evaluation.kitti_results import KITTI_CLASS_IDS
from stemseg_core.evaluation.position_error import PositionErrors, measure_against

log = logging.getLogger(__name__)


def find_depth_topic(bag: str | Path, image_topic: str) -> str | None:
    """The bag's depth image topic beside ``image_topic`` (None: the bag has none)."""
    from stemseg_core.data.bag_format import IMAGE_MSGTYPE
    from stemseg_core.data.bag_writer import depth_topic_for
    from stemseg_core.data.rosbag_io import list_topics

    t = list_topics(bag).get(depth_topic_for(image_topic))
    return t.name if t is not None and t.msgtype == IMAGE_MSGTYPE else None


def find_sensor_topic(bag: str | Path, image_topic: str) -> tuple[str, str] | None:
    """("depth", topic) when the bag has depth beside ``image_topic``, else ("lidar", topic)
    for its PointCloud2 topic (see :func:`~stemseg_core.data.bag_points.find_points_topic`),
    else None."""
    from stemseg_core.data.bag_points import find_points_topic
    from stemseg_core.data.rosbag_io import list_topics

    if (depth := find_depth_topic(bag, image_topic)) is not None:
        return "depth", depth
    points = find_points_topic(list_topics(bag))
    return None if points is None else ("lidar", points)


def _gt_by_frame(gt_root: str | Path, seq: str) -> dict[int, list[tuple[str, object]]]:
    """{frame: [(class name, (H, W) bool mask)]} of the sequence's ground truth (cars and
    pedestrians; ignore regions left out)."""
    from stemseg_core.data.kitti_layout import gt_txt_dir, read_kitti_mots_records
    from stemseg_core.data.rle import kitti_string_to_mask

    folder = gt_txt_dir(gt_root)
    if folder is None:
        raise FileNotFoundError(f"no ground-truth instances_txt folder in {gt_root}")
    names = {v: k for k, v in KITTI_CLASS_IDS.items()}
    out: dict[int, list[tuple[str, object]]] = {}
    for r in read_kitti_mots_records(folder / f"{seq}.txt"):
        if r.class_id in names:
            out.setdefault(r.frame, []).append(
                (names[r.class_id], kitti_string_to_mask(r.rle, r.height, r.width)))
    return out


def camera_matrix(gt_root: str | Path, seq: str):
    """K (3, 3) of the sequence's colour camera from its KITTI calibration (None: none)."""
    from stemseg_core.data.kitti_camera import find_calibration, read_projection
    from stemseg_core.data.kitti_layout import sequence_dir
    from stemseg_core.geometry import intrinsics_of

    calib = find_calibration(sequence_dir(gt_root, seq))
    P = read_projection(calib) if calib is not None else None
    return None if P is None else intrinsics_of(P)


def lidar_transform(gt_root: str | Path, seq: str):
    """(4, 4) LiDAR -> rectified camera 2 of the sequence's calibration (None: none)."""
    from stemseg_core.data.kitti_calib import lidar_to_camera2
    from stemseg_core.data.kitti_camera import find_calibration, read_calib
    from stemseg_core.data.kitti_layout import sequence_dir

    calib = find_calibration(sequence_dir(gt_root, seq))
    return None if calib is None else lidar_to_camera2(read_calib(calib))


def score_bag_positions(bag: str | Path, topic: str, results: Sequence[object | None],
                        stamps_ns: Sequence[int], frame_numbers: Sequence[int],
                        gt_root: str | Path, seq: str,
                        sensor: str = "depth") -> PositionErrors | None:
    """Errors over the replay's received frames that have a depth image (``sensor`` "depth") or
    LiDAR scan ("lidar") of the same stamp on ``topic`` (``results[i]``: the node's FrameResult
    of the i-th frame sent, None = lost). None when the sequence has no calibration to take K
    (and, for LiDAR, the LiDAR transform) from."""
    from stemseg_core.data.bag_points import read_clouds
    from stemseg_core.data.rosbag_io import BagImageReader
    from stemseg_core.geometry import TrackLifter, lift_from_depth, lift_from_points

    K = camera_matrix(gt_root, seq)
    T = lidar_transform(gt_root, seq) if sensor == "lidar" else None
    if K is None or (sensor == "lidar" and T is None):
        log.warning("3-D score skipped: no calibration (P2%s) for sequence %s in %s",
                    ", Tr_velo_cam" if sensor == "lidar" else "", seq, gt_root)
        return None
    if sensor == "depth":
        with BagImageReader(bag, topic) as reader:
            data = {img.stamp_ns: img.array() for img in reader}
    else:
        data = read_clouds(bag, topic)
    gt = _gt_by_frame(gt_root, seq)
    lifter, total = TrackLifter(), PositionErrors()
    for res, stamp, frame in zip(results, stamps_ns, frame_numbers):
        d = data.get(stamp)
        if res is None or d is None:
            continue
        g = gt.get(frame, [])
        gt_masks = [m for _, m in g]
        if sensor == "depth":
            tracks = lifter.update(res.instances, stamp * 1e-9, depth=d, K=K)
            refs = lift_from_depth(gt_masks, d, K) if gt_masks and res.instances else []
        else:
            tracks = lifter.update(res.instances, stamp * 1e-9, points=d, velo_to_cam=T, K=K)
            refs = lift_from_points(gt_masks, d, T, K)
        total.add(measure_against([i.mask for i in res.instances],
                                  [t.object.position if t.object.has_position else None
                                   for t in tracks], gt_masks, [c for c, _ in g], refs))
    return total
