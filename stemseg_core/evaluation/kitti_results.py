"""KITTI MOTS result files: tracker output -> ``<seq>.txt`` that TrackEval's KittiMOTS reads.

One line per object and frame, space separated (what ``trackeval.datasets.KittiMOTS`` parses)::

    <frame> <track_id> <class_id> <img_height> <img_width> <rle>

- ``frame``: 0-based frame number (TrackEval's time key; it must lie in ``0 .. seq_length-1``).
- ``track_id``: any integer, unique within a frame. TrackEval takes it as is (the GT convention
  ``class*1000 + k`` is only for ground truth), so the tracker's ID is written unchanged.
- ``class_id``: 1 car, 2 pedestrian (KITTI ids; chosen from the class name when it is one of
  these, else the tracker's class id is written).
- ``rle``: pycocotools' compressed RLE string of the (H, W) mask.

Masks of one frame must not overlap (TrackEval raises "Tracker has overlapping masks"), so
:func:`resolve_overlaps` gives each contested pixel to the higher-scoring instance first.
Optional post-processing as in the authors' code: minimum mask area and minimum track length,
per class (:data:`AUTHORS_MIN_AREA`, :data:`AUTHORS_MIN_TRACK_LENGTH`); both off by default.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from stemseg_core.data.kitti_layout import kitti_mots_lines
from stemseg_core.data.rle import kitti_string_to_mask, mask_to_kitti_string
from stemseg_core.inference.types import FrameResult, TrackedInstance

KITTI_CLASS_IDS = {"car": 1, "pedestrian": 2}
KITTI_CLASS_NAMES = {v: k for k, v in KITTI_CLASS_IDS.items()}
#: Authors' KITTI MOTS post-processing (pixels per frame / frames per track).
AUTHORS_MIN_AREA = {"car": 150, "pedestrian": 250}
AUTHORS_MIN_TRACK_LENGTH = {"car": 3, "pedestrian": 10}


def checkpoint_min_track_length(inference, class_names: list[str]
                                ) -> int | dict[str, int] | None:
    """A checkpoint's minimum track length (its ``inference`` config section) as
    :func:`postprocess` takes it: None when off, one number for all classes, or {class name:
    frames} when ``min_track_length_per_class`` sets some (the others ``min_track_length``).
    ``class_names``: the tracker's, background first."""
    if inference.min_track_length_per_class:
        return {c: int(inference.min_track_length_per_class.get(c, inference.min_track_length))
                for c in class_names[1:]}
    return int(inference.min_track_length) or None


def kitti_class_id(inst: TrackedInstance) -> int:
    """KITTI MOTS class id of an instance: by name for car/pedestrian, else its own class id."""
    return KITTI_CLASS_IDS.get(str(inst.class_name).lower(), int(inst.class_id))


def _per_class(value: int | Mapping[str, int] | None, inst: TrackedInstance) -> int:
    if value is None:
        return 0
    if isinstance(value, Mapping):
        name = str(inst.class_name).lower()
        if name not in value:
            name = KITTI_CLASS_NAMES.get(int(inst.class_id), name)
        return int(value.get(name, 0))
    return int(value)


def resolve_overlaps(instances: Iterable[TrackedInstance]) -> list[TrackedInstance]:
    """Make the masks of one frame disjoint: higher score keeps contested pixels.

    Instances left with an empty mask are dropped, as are repeated track IDs (the lower-scoring
    copy). Returns new TrackedInstance objects (inputs are not modified), highest score first.
    """
    ordered = sorted(instances, key=lambda i: -float(i.score))
    out: list[TrackedInstance] = []
    taken: np.ndarray | None = None
    seen: set[int] = set()
    for inst in ordered:
        if int(inst.track_id) in seen:
            continue
        mask = np.asarray(inst.mask, dtype=bool)
        if taken is None:
            taken = np.zeros(mask.shape, dtype=bool)
        elif taken.shape != mask.shape:
            raise ValueError(f"track {inst.track_id}: mask shape {mask.shape} differs from "
                             f"{taken.shape} of the other instances in the frame")
        mask = mask & ~taken
        if not mask.any():
            continue
        taken |= mask
        seen.add(int(inst.track_id))
        out.append(dataclasses.replace(inst, mask=mask))
    return out


def postprocess(results: Iterable[FrameResult],
                min_area: int | Mapping[str, int] | None = None,
                min_track_length: int | Mapping[str, int] | None = None) -> list[FrameResult]:
    """Overlap resolution, then optional area and track-length filters, over one sequence.

    ``min_area``: drop instance masks with fewer pixels (after overlap resolution) in that frame.
    ``min_track_length``: drop tracks present in fewer frames (after the area filter).
    Either may be an int for all classes or a mapping class name -> value (missing = 0).
    """
    frames = []
    for fr in results:
        kept = []
        for inst in resolve_overlaps(fr.instances):
            if int(inst.mask.sum()) >= _per_class(min_area, inst):
                kept.append(inst)
        frames.append(dataclasses.replace(fr, instances=kept))
    if min_track_length:
        length = Counter(int(i.track_id) for fr in frames for i in fr.instances)
        # A track's class may change between frames; judge it by its most frequent class.
        classes: dict[int, Counter] = {}
        for fr in frames:
            for i in fr.instances:
                classes.setdefault(int(i.track_id), Counter())[(i.class_id, i.class_name)] += 1
        need = {}
        for tid, cnt in classes.items():
            cid, cname = cnt.most_common(1)[0][0]
            probe = TrackedInstance(tid, cid, cname, 0.0, np.zeros((0, 0), dtype=bool))
            need[tid] = _per_class(min_track_length, probe)
        frames = [dataclasses.replace(fr, instances=[i for i in fr.instances
                                                     if length[int(i.track_id)] >= need[
                                                         int(i.track_id)]])
                  for fr in frames]
    return frames


def format_lines(results: Iterable[FrameResult],
                 frame_numbers: list[int] | None = None) -> list[str]:
    """KITTI MOTS result lines (no newline) for already post-processed frames.

    ``frame_numbers[r.index]`` is written as the frame number when given (e.g. from the image
    file names), else ``r.index``.
    """
    lines = []
    for fr in results:
        frame = int(frame_numbers[fr.index]) if frame_numbers is not None else int(fr.index)
        h, w = int(fr.image_size[0]), int(fr.image_size[1])
        for inst in sorted(fr.instances, key=lambda i: int(i.track_id)):
            mask = np.asarray(inst.mask, dtype=bool)
            if mask.shape != (h, w):
                raise ValueError(f"frame {frame}, track {inst.track_id}: mask shape {mask.shape} "
                                 f"!= image size {(h, w)}")
            lines.append(f"{frame} {int(inst.track_id)} {kitti_class_id(inst)} {h} {w} "
                         f"{mask_to_kitti_string(mask)}")
    return lines


def write_kitti_mots(path: str | Path, results: Iterable[FrameResult],
                     frame_numbers: list[int] | None = None,
                     min_area: int | Mapping[str, int] | None = None,
                     min_track_length: int | Mapping[str, int] | None = None) -> Path:
    """Write one sequence's results to ``path`` (``<seq>.txt``), resolving overlaps first.

    An empty file is written for a sequence without detections (TrackEval needs the file).
    """
    path = Path(path)
    frames = postprocess(results, min_area=min_area, min_track_length=min_track_length)
    lines = format_lines(frames, frame_numbers)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)
    return path


@dataclasses.dataclass
class KittiObject:
    """One line of a KITTI MOTS instances_txt / result file, mask decoded."""

    frame: int
    obj_id: int
    class_id: int
    mask: np.ndarray


def read_kitti_mots(path: str | Path) -> dict[int, list[KittiObject]]:
    """Read a KITTI MOTS text file (GT or results) into ``{frame: [KittiObject, ...]}``."""
    out: dict[int, list[KittiObject]] = {}
    for frame, oid, cid, h, w, rle in kitti_mots_lines(path):
        out.setdefault(frame, []).append(
            KittiObject(frame, oid, cid, kitti_string_to_mask(rle, h, w)))
    return out
