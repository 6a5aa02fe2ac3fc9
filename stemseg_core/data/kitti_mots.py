"""KITTI MOTS reader, and the in-memory sequence structure shared by all readers.

Every reader (KITTI MOTS here, :mod:`.davis`, :mod:`.youtube_vis`) returns :class:`Sequence`
objects: ``image_paths`` (one per frame), the image size, and ``annotations(t)`` giving a
:class:`FrameAnnotation` (list of :class:`Instance` = ``(track_id, class_id, mask)`` with
``mask`` (H, W) bool, plus an ``ignore`` (H, W) bool mask). Annotations are decoded lazily.

KITTI MOTS layout (``root`` = the data set folder, e.g. what ``stemseg synth`` writes)::

    root/training/image_02/<seq>/<frame:06d>.png
    root/instances_txt/<seq>.txt      lines "frame obj_id class_id height width rle"
    root/instances/<seq>/<frame:06d>.png   uint16, pixel = obj_id (class = id // 1000)
    root/<split>.seqmap               lines "<seq> empty 000000 <last_frame>"

Class 10 / obj_id 10000 marks ignore regions. Splits are read from ``<split>.seqmap`` or
``evaluate_mots.seqmap.<split>``; without a seqmap every sequence folder is listed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from stemseg_core.data.rle import kitti_string_area, kitti_string_to_mask

IGNORE_CLASS = 10
IGNORE_ID = 10000


class Instance(NamedTuple):
    track_id: int
    class_id: int
    mask: np.ndarray  # (H, W) bool


@dataclass
class FrameAnnotation:
    instances: list[Instance]
    ignore: np.ndarray  # (H, W) bool


@dataclass
class Sequence:
    """One video: frame image paths plus a lazy per-frame annotation loader."""

    name: str
    image_paths: list[str]
    height: int
    width: int
    annotation_fn: Callable[[int], FrameAnnotation] | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def num_frames(self) -> int:
        return len(self.image_paths)

    def annotations(self, t: int) -> FrameAnnotation:
        """Instances and ignore mask of frame ``t`` (empty when the frame has no annotation)."""
        if self.annotation_fn is None:
            return FrameAnnotation([], np.zeros((self.height, self.width), bool))
        return self.annotation_fn(t)

    def load_image(self, t: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of frame ``t``."""
        return read_rgb(self.image_paths[t])


def read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(img[..., ::-1])


def read_seqmap(path: str | Path) -> list[tuple[str, int, int]]:
    """Seqmap lines ``<seq> empty <first> <last>`` -> [(seq, first, last)] (seq zero-padded)."""
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) < 4:
            continue
        out.append((f"{int(parts[0]):04d}", int(parts[2]), int(parts[3])))
    return out


def list_sequences(root: str | Path, split: str | None = None) -> list[str]:
    """Sequence names of a split (from its seqmap), or all sequences when ``split`` is None."""
    root = Path(root)
    if split is not None:
        for name in (f"{split}.seqmap", f"evaluate_mots.seqmap.{split}"):
            if (root / name).is_file():
                return [s for s, _, _ in read_seqmap(root / name)]
        raise FileNotFoundError(f"no seqmap for split '{split}' in {root} "
                                f"(looked for {split}.seqmap, evaluate_mots.seqmap.{split})")
    img_root = _image_root(root)
    return sorted(p.name for p in img_root.iterdir() if p.is_dir())


def _image_root(root: Path) -> Path:
    for cand in (root / "training" / "image_02", root / "image_02"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"no training/image_02 folder in {root}")


def parse_instances_txt(path: str | Path) -> dict[int, list[tuple[int, int, int, int, str]]]:
    """instances_txt -> {frame: [(obj_id, class_id, height, width, rle), ...]}."""
    out: dict[int, list[tuple[int, int, int, int, str]]] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split(" ")
        if len(parts) < 6:
            continue
        t, oid, cls, h, w = (int(p) for p in parts[:5])
        out.setdefault(t, []).append((oid, cls, h, w, parts[5]))
    return out


def decode_instance_png(ids: np.ndarray) -> FrameAnnotation:
    """uint16 instance map (pixel = obj_id) -> FrameAnnotation."""
    ignore = ids == IGNORE_ID
    insts = []
    for oid in np.unique(ids):
        if oid == 0 or oid == IGNORE_ID:
            continue
        insts.append(Instance(int(oid), int(oid) // 1000, ids == oid))
    return FrameAnnotation(insts, ignore)


def load_sequence(root: str | Path, seq: str | int, source: str = "auto") -> Sequence:
    """Read one KITTI MOTS sequence; ``source`` = "txt" (instances_txt), "png" (instances/),
    "none" (images only) or "auto" (txt when present, else png, else none)."""
    root = Path(root)
    name = f"{int(seq):04d}" if str(seq).isdigit() else str(seq)
    img_dir = _image_root(root) / name
    paths = sorted(str(p) for p in img_dir.glob("*.png")) or sorted(
        str(p) for p in img_dir.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no images in {img_dir}")
    first = cv2.imread(paths[0], cv2.IMREAD_UNCHANGED)
    h, w = first.shape[:2]
    txt = root / "instances_txt" / f"{name}.txt"
    png_dir = root / "instances" / name
    if source == "auto":
        source = "txt" if txt.is_file() else ("png" if png_dir.is_dir() else "none")
    frame_of = [int(Path(p).stem) for p in paths]
    fn: Callable[[int], FrameAnnotation] | None = None
    meta: dict = {"dataset": "kitti_mots", "source": source}
    if source == "txt":
        table = parse_instances_txt(txt)

        def fn(t: int) -> FrameAnnotation:
            ignore = np.zeros((h, w), bool)
            insts = []
            for oid, cls, hh, ww, rle in table.get(frame_of[t], []):
                m = kitti_string_to_mask(rle, hh, ww)
                if cls == IGNORE_CLASS or oid == IGNORE_ID:
                    ignore |= m
                else:
                    insts.append(Instance(oid, cls, m))
            return FrameAnnotation(insts, ignore)

        def areas(t: int) -> list[tuple[int, int]]:
            return [(cls, kitti_string_area(rle, hh, ww))
                    for oid, cls, hh, ww, rle in table.get(frame_of[t], [])
                    if cls != IGNORE_CLASS and oid != IGNORE_ID]
        meta["instance_areas"] = areas
    elif source == "png":
        def fn(t: int) -> FrameAnnotation:
            p = png_dir / Path(paths[t]).with_suffix(".png").name
            ids = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.is_file() else None
            if ids is None:
                return FrameAnnotation([], np.zeros((h, w), bool))
            return decode_instance_png(ids)
    elif source != "none":
        raise ValueError(f"source must be auto, txt, png or none, got {source!r}")
    return Sequence(name, paths, h, w, fn, meta)


def load_split(root: str | Path, split: str | None = "train", source: str = "auto"
               ) -> list[Sequence]:
    """All sequences of a split (``None`` = every sequence folder)."""
    return [load_sequence(root, s, source) for s in list_sequences(root, split)]
