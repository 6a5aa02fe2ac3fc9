"""KITTI MOTS reader: sequences as :class:`~stemseg_core.data.sequence.Sequence` objects
(re-exported here with :class:`Instance` and :class:`FrameAnnotation`).

KITTI MOTS layout (``root`` = the data set folder, e.g. what ``stemseg synth`` writes)::

    root/training/image_02/<seq>/<frame:06d>.png
    root/instances_txt/<seq>.txt      lines "frame obj_id class_id height width rle"
                                      (or label_02/, see kitti_layout.GT_TXT_DIRS)
    root/instances/<seq>/<frame:06d>.png   uint16, pixel = obj_id (class = id // 1000)
    root/<split>.seqmap               lines "<seq> empty 000000 <last_frame>"

Class 10 / obj_id 10000 marks ignore regions. Splits are read from ``<split>.seqmap`` or
``evaluate_mots.seqmap.<split>``; without a seqmap every sequence folder is listed.

As a data format (``data.format: kitti_mots``, one file: reader and registration):
KITTI MOTS (and what ``stemseg synth`` writes): the fallback format of ``data.format=auto``.

``training/image_02/<seq>/*.png`` with ``instances_txt/<seq>.txt`` or ``instances/<seq>/``;
splits from ``<split>.seqmap``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat
from stemseg_core.data.kitti_layout import (
    KittiMotsRecord,
    frame_files,
    gt_txt_dir,
    list_sequences,
    read_kitti_mots_records,
    seq_name,
    sequence_dir,
)
from stemseg_core.data.rle import kitti_string_area, kitti_string_to_mask
from stemseg_core.data.sequence import FrameAnnotation, Instance, Sequence
from stemseg_core.errors import DataFormatError

IGNORE_CLASS = 10
IGNORE_ID = 10000


def decode_instance_png(ids: np.ndarray) -> FrameAnnotation:
    """uint16 instance map (pixel = obj_id) -> FrameAnnotation."""
    ignore = ids == IGNORE_ID
    insts = []
    for oid in np.unique(ids):
        if oid == 0 or oid == IGNORE_ID:
            continue
        insts.append(Instance(int(oid), int(oid) // 1000, ids == oid))
    return FrameAnnotation(insts, ignore)


def _frame_numbers(seq_dir: Path, paths: list[Path]) -> list[int]:
    """KITTI frame numbers of a sequence's images; names must be numbers without gaps."""
    numbers = []
    for p in paths:
        if not p.stem.isdigit():
            raise DataFormatError(f"image name {p.name!r} is not a frame number (000000.png, "
                                  f"...)", p)
        numbers.append(int(p.stem))
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        shown = ", ".join(f"{k:06d}{paths[0].suffix}" for k in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataFormatError(f"frames missing: {shown}{more} (the sequence has {len(paths)} "
                              f"images numbered {numbers[0]}..{numbers[-1]}; frames must be "
                              f"consecutive)", seq_dir)
    return numbers


def read_instances_txt(txt: Path, frames: list[int], size: tuple[int, int]
                       ) -> dict[int, list[KittiMotsRecord]]:
    """{frame: records} of a sequence's instances_txt, checked against its images: every
    line's frame must have an image and its mask the images' ``size`` (H, W)."""
    have = set(frames)
    table: dict[int, list[KittiMotsRecord]] = {}
    for r in read_kitti_mots_records(txt):
        if r.frame not in have:
            raise DataFormatError(f"frame {r.frame} has no image (the sequence's images are "
                                  f"frames {frames[0]}..{frames[-1]})", txt, r.line)
        if (r.height, r.width) != size:
            raise DataFormatError(f"mask is {r.width}x{r.height} (w x h) but the sequence's "
                                  f"images are {size[1]}x{size[0]}", txt, r.line)
        table.setdefault(r.frame, []).append(r)
    return table


def _image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataFormatError("cannot read the image (not a PNG/JPG or damaged)", path)
    return img.shape[:2]


def load_sequence(root: str | Path, seq: str | int, source: str = "auto") -> Sequence:
    """Read one KITTI MOTS sequence; ``source`` = "txt" (instances_txt), "png" (instances/),
    "none" (images only) or "auto" (txt when present, else png, else none).

    Malformed lines, annotations of frames without an image, masks of another size than the
    images and gaps in the frame numbers raise :class:`DataFormatError` naming file and line.
    """
    root = Path(root)
    name = seq_name(seq)
    seq_dir = sequence_dir(root, name)
    files = frame_files(seq_dir)
    paths = [str(p) for p in files]
    h, w = _image_size(files[0])
    txt = (gt_txt_dir(root) or root / "instances_txt") / f"{name}.txt"
    png_dir = root / "instances" / name
    if source == "auto":
        source = "txt" if txt.is_file() else ("png" if png_dir.is_dir() else "none")
    frame_of = _frame_numbers(seq_dir, files)
    fn: Callable[[int], FrameAnnotation] | None = None
    meta: dict = {"dataset": "kitti_mots", "source": source}
    if source == "txt":
        table = read_instances_txt(txt, frame_of, (h, w))

        def fn(t: int) -> FrameAnnotation:
            ignore = np.zeros((h, w), bool)
            insts = []
            for r in table.get(frame_of[t], []):
                try:
                    m = kitti_string_to_mask(r.rle, r.height, r.width)
                except (ValueError, TypeError) as e:
                    raise DataFormatError(f"cannot decode the mask RLE: {e}", txt,
                                          r.line) from None
                if r.class_id == IGNORE_CLASS or r.obj_id == IGNORE_ID:
                    ignore |= m
                else:
                    insts.append(Instance(r.obj_id, r.class_id, m))
            return FrameAnnotation(insts, ignore)

        def areas(t: int) -> list[tuple[int, int]]:
            return [(r.class_id, kitti_string_area(r.rle, r.height, r.width))
                    for r in table.get(frame_of[t], [])
                    if r.class_id != IGNORE_CLASS and r.obj_id != IGNORE_ID]
        meta["instance_areas"] = areas
    elif source == "png":
        def fn(t: int) -> FrameAnnotation:
            p = png_dir / Path(paths[t]).with_suffix(".png").name
            ids = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.is_file() else None
            if ids is None:
                return FrameAnnotation([], np.zeros((h, w), bool))
            if ids.shape[:2] != (h, w) or ids.ndim != 2:
                raise DataFormatError(f"instance map is {ids.shape[1]}x{ids.shape[0]}"
                                      f"{'' if ids.ndim == 2 else ' with channels'} but the "
                                      f"images are {w}x{h} (one uint16 channel expected)", p)
            return decode_instance_png(ids)
    elif source != "none":
        raise ValueError(f"source must be auto, txt, png or none, got {source!r}")
    return Sequence(name, paths, h, w, fn, meta)


def load_split(root: str | Path, split: str | None = "train", source: str = "auto"
               ) -> list[Sequence]:
    """All sequences of a split (``None`` = every sequence folder)."""
    return [load_sequence(root, s, source) for s in list_sequences(root, split)]


@DATASET_FORMATS.register("kitti_mots")
class KittiMotsFormat(DatasetFormat):
    priority = 1000  # anything the other formats do not recognise

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir()

    @classmethod
    def load(cls, path: Path, split: str, class_names: list[str] | tuple[str, ...] | None
             ) -> list[Sequence]:
        return load_split(path, split)


__all__ = ["IGNORE_CLASS", "IGNORE_ID", "FrameAnnotation", "Instance", "KittiMotsFormat",
           "Sequence", "decode_instance_png", "list_sequences", "load_sequence", "load_split",
           "read_instances_txt"]
