"""DAVIS 2017 / 2019 reader.

Layout::

    root/JPEGImages/480p/<seq>/<frame:05d>.jpg
    root/Annotations/480p/<seq>/<frame:05d>.png     palette PNG, pixel index = object id
    root/ImageSets/<year>/{train,val}.txt           one sequence name per line

DAVIS 2019 unsupervised annotations live in ``Annotations_unsupervised`` (pass
``annotations="Annotations_unsupervised"``). Object ids 1..254 become track ids with class 1
(DAVIS has no categories); index 255 (void / object boundaries) becomes the ignore mask. Frames
without an annotation PNG have no instances.

As a data format (``data.format: davis``, one file: reader and registration):
DAVIS 2017 / 2019: ``JPEGImages/<res>/<seq>`` and ``Annotations[_unsupervised]/<res>/<seq>``
(the unsupervised annotations of DAVIS 2019 are preferred when present), splits from
``ImageSets/<year>/<split>.txt``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat, check_class_ids
from stemseg_core.data.sequence import FrameAnnotation, Instance, Sequence
from stemseg_core.errors import DataFormatError

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


def annotations_folder(root: Path) -> str:
    for name in ("Annotations_unsupervised", "Annotations"):
        if (root / name).is_dir():
            return name
    raise DataFormatError(f"DAVIS folder {root} has no Annotations/ or "
                          f"Annotations_unsupervised/")


def newest_year(root: Path, split: str) -> str:
    """Newest ImageSets/<year> that lists ``split``."""
    sets = root / "ImageSets"
    years = sorted((p.name for p in sets.iterdir() if (p / f"{split}.txt").is_file()),
                   reverse=True) if sets.is_dir() else []
    if not years:
        raise DataFormatError(f"DAVIS folder {root}: no ImageSets/<year>/{split}.txt (split "
                              f"'{split}'); DAVIS 2017/2019 ship train.txt and val.txt")
    return years[0]


def resolution(root: Path) -> str:
    sizes = sorted(p.name for p in (root / "JPEGImages").iterdir() if p.is_dir())
    if "480p" in sizes:
        return "480p"
    if len(sizes) == 1:
        return sizes[0]
    raise DataFormatError(f"DAVIS folder {root}/JPEGImages: expected a 480p/ (or a single "
                          f"resolution) folder, found {sizes or 'none'}")


@DATASET_FORMATS.register("davis")
class DavisFormat(DatasetFormat):
    priority = 20

    @classmethod
    def detect(cls, path: Path) -> bool:
        return (path / "JPEGImages").is_dir() and any(path.glob("Annotations*"))

    @classmethod
    def load(cls, path: Path, split: str, class_names: list[str] | tuple[str, ...] | None
             ) -> list[Sequence]:
        seqs = load_split(path, split, newest_year(path, split), resolution(path),
                                annotations_folder(path))
        if class_names is not None:
            check_class_ids({1: "object"}, class_names, f"DAVIS {path}")
        return seqs
