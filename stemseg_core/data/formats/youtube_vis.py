"""YouTube-VIS: the annotation JSON (``videos``, ``annotations``, ``categories``), given
directly or as the one such JSON in a folder; images under
:func:`stemseg_core.data.youtube_vis.default_image_root` (reader:
:mod:`stemseg_core.data.youtube_vis`)."""
from __future__ import annotations

import json
from pathlib import Path

from stemseg_core.data import youtube_vis
from stemseg_core.data.errors import DataFormatError
from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat, check_class_ids
from stemseg_core.data.sequence import Sequence

#: Bytes read from the head of a JSON file to recognise a YouTube-VIS annotation file.
_SNIFF_BYTES = 4096


def find_json(path: Path) -> Path | None:
    """The YouTube-VIS annotation JSON at or directly inside ``path``, if there is one."""
    if path.is_file() and path.suffix == ".json":
        return path
    if not path.is_dir():
        return None
    found = []
    for p in sorted(path.glob("*.json")):
        try:
            with open(p) as f:
                head = f.read(_SNIFF_BYTES)
        except OSError:
            continue
        if '"videos"' in head or p.stem in ("instances", "train", "valid", "val"):
            found.append(p)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataFormatError(f"{path} holds several YouTube-VIS JSON files ({names}): pass the "
                              f"one to train on as --data")
    return found[0] if found else None


@DATASET_FORMATS.register("youtube_vis")
class YoutubeVisFormat(DatasetFormat):
    priority = 10

    @classmethod
    def detect(cls, path: Path) -> bool:
        return find_json(path) is not None

    @classmethod
    def load(cls, path: Path, split: str, class_names: list[str] | tuple[str, ...] | None
             ) -> list[Sequence]:
        json_path = find_json(path)
        if json_path is None:
            raise DataFormatError(f"no YouTube-VIS annotation JSON at {path}")
        try:
            with open(json_path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"not valid JSON: {e.msg} (column {e.colno})", json_path,
                                  e.lineno) from None
        if not data.get("annotations"):
            raise DataFormatError(f"{json_path} has no annotations (YouTube-VIS's valid/test "
                                  f"JSON carry none): train on the train JSON")
        seqs, cats = youtube_vis.load(json_path, data=data)
        if class_names is not None:
            check_class_ids(cats, class_names, str(json_path))
        return seqs
