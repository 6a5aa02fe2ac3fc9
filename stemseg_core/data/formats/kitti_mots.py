"""KITTI MOTS (and what ``stemseg synth`` writes): the fallback format of ``data.format=auto``.

``training/image_02/<seq>/*.png`` with ``instances_txt/<seq>.txt`` or ``instances/<seq>/``;
splits from ``<split>.seqmap`` (reader: :mod:`stemseg_core.data.kitti_mots`).
"""
from __future__ import annotations

from pathlib import Path

from stemseg_core.data import kitti_mots
from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat
from stemseg_core.data.sequence import Sequence


@DATASET_FORMATS.register("kitti_mots")
class KittiMotsFormat(DatasetFormat):
    priority = 1000  # anything the other formats do not recognise

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir()

    @classmethod
    def load(cls, path: Path, split: str, class_names: list[str] | tuple[str, ...] | None
             ) -> list[Sequence]:
        return kitti_mots.load_split(path, split)
