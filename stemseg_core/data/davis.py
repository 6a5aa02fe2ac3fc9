"""DAVIS 2017 / 2019 reader.

Layout::

    root/JPEGImages/480p/<seq>/<frame:05d>.jpg
    root/Annotations/480p/<seq>/<frame:05d>.png     palette PNG, pixel index = object id
    root/ImageSets/<year>/{train,val}.txt           one sequence name per line

DAVIS 2019 unsupervised annotations live in ``Annotations_unsupervised`` (pass
``annotations="Annotations_unsupervised"``). Object ids 1..254 become track ids with class 1
(DAVIS has no categories); index 255 (void / object boundaries) becomes the ignore mask. Frames
without an annotation PNG have no instances.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stemseg_core.data.sequence import FrameAnnotation, Instance, Sequence

VOID = 255


def list_sequences(root: str | Path, split: str = "train", year: str | int = "2017") -> list[str]:
    path = Path(root) / "ImageSets" / str(year) / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"DAVIS split file not found: {path}")
    return [s.strip() for s in path.read_text().splitlines() if s.strip()]


def read_palette_png(path: str | Path) -> np.ndarray:
    """Palette (or grayscale) PNG -> (H, W) uint8 indices."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            im = im.convert("L")
        return np.array(im, dtype=np.uint8)


def decode_annotation(idx: np.ndarray) -> FrameAnnotation:
    insts = [Instance(int(v), 1, idx == v) for v in np.unique(idx) if v not in (0, VOID)]
    return FrameAnnotation(insts, idx == VOID)


def load_sequence(root: str | Path, name: str, resolution: str = "480p",
                  annotations: str = "Annotations") -> Sequence:
    root = Path(root)
    img_dir = root / "JPEGImages" / resolution / name
    paths = sorted(str(p) for p in img_dir.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no images in {img_dir}")
    with Image.open(paths[0]) as im:
        w, h = im.size
    ann_dir = root / annotations / resolution / name

    def fn(t: int) -> FrameAnnotation:
        p = ann_dir / (Path(paths[t]).stem + ".png")
        if not p.is_file():
            return FrameAnnotation([], np.zeros((h, w), bool))
        return decode_annotation(read_palette_png(p))

    return Sequence(name, paths, h, w, fn, {"dataset": "davis"})


def load_split(root: str | Path, split: str = "train", year: str | int = "2017",
               resolution: str = "480p", annotations: str = "Annotations") -> list[Sequence]:
    return [load_sequence(root, s, resolution, annotations)
            for s in list_sequences(root, split, year)]
