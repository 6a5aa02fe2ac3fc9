"""DAVIS 2017 / 2019: ``JPEGImages/<res>/<seq>`` and ``Annotations[_unsupervised]/<res>/<seq>``
(the unsupervised annotations of DAVIS 2019 are preferred when present), splits from
``ImageSets/<year>/<split>.txt`` (reader: :mod:`stemseg_core.data.davis`)."""
from __future__ import annotations

from pathlib import Path

from stemseg_core.data import davis
from stemseg_core.data.errors import DataFormatError
from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat, check_class_ids
from stemseg_core.data.sequence import Sequence


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
        seqs = davis.load_split(path, split, newest_year(path, split), resolution(path),
                                annotations_folder(path))
        if class_names is not None:
            check_class_ids({1: "object"}, class_names, f"DAVIS {path}")
        return seqs
