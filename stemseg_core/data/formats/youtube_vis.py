"""YouTube-VIS reader.

``annotations.json`` holds ``videos`` (``id``, ``file_names`` relative to the image root,
``height``, ``width``), ``annotations`` (``video_id``, ``category_id``, ``id``, ``iscrowd``,
``segmentations``: one entry per frame, ``null`` where the object is absent, else a COCO RLE
(compressed: ``counts`` a string; uncompressed: ``counts`` a list of run lengths) or a list of
polygons) and ``categories`` (``id``, ``name``). Track id = annotation ``id``, class id =
``category_id``; crowd annotations (``iscrowd`` 1) become ignore regions.

As a data format (``data.format: youtube_vis``, one file: reader and registration):
YouTube-VIS: the annotation JSON (``videos``, ``annotations``, ``categories``), given
directly or as the one such JSON in a folder; images under
:func:`stemseg_core.data.formats.youtube_vis.default_image_root` (reader:
:mod:`stemseg_core.data.formats.youtube_vis`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat, check_class_ids
from stemseg_core.data.sequence import FrameAnnotation, Instance, Sequence
from stemseg_core.errors import DataFormatError


def decode_segmentation(seg, height: int, width: int) -> np.ndarray:
    """COCO segmentation (compressed / uncompressed RLE or polygons) -> (H, W) bool."""
    if isinstance(seg, dict):
        counts = seg["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = {"size": seg.get("size", [height, width]),
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(bool)
    if isinstance(seg, list):
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), bool)
        rles = mask_utils.frPyObjects(polys, height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    raise ValueError(f"unsupported segmentation type {type(seg).__name__}")


def default_image_root(json_path: str | Path) -> Path:
    """The image folder of a YouTube-VIS JSON: ``<json folder>/JPEGImages`` (2021 layout,
    ``train/instances.json``) or ``<json folder>/<json stem>/JPEGImages`` (2019 layout,
    ``train.json`` beside ``train/``); FileNotFoundError naming both when neither exists."""
    json_path = Path(json_path)
    cands = (json_path.parent / "JPEGImages", json_path.parent / json_path.stem / "JPEGImages")
    for cand in cands:
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"no image folder for {json_path}: expected {cands[0]} or {cands[1]}")


def load(json_path: str | Path, image_root: str | Path | None = None, data: dict | None = None
         ) -> tuple[list[Sequence], dict[int, str]]:
    """Read a YouTube-VIS JSON -> (sequences, {category id: name}). ``image_root`` defaults to
    :func:`default_image_root`; ``data``: the JSON already parsed (it is not read again)."""
    json_path = Path(json_path)
    if data is None:
        data = json.loads(json_path.read_text())
    root = Path(image_root) if image_root is not None else default_image_root(json_path)
    by_video: dict[int, list[dict]] = {}
    for ann in data.get("annotations") or []:
        by_video.setdefault(ann["video_id"], []).append(ann)
    cats = {int(c["id"]): c["name"] for c in data.get("categories", [])}
    seqs = []
    for v in data["videos"]:
        h, w = int(v["height"]), int(v["width"])
        anns = by_video.get(v["id"], [])

        def fn(t: int, anns=anns, h=h, w=w) -> FrameAnnotation:
            ignore = np.zeros((h, w), bool)
            insts = []
            for a in anns:
                segs = a.get("segmentations") or []
                seg = segs[t] if t < len(segs) else None
                if seg is None:
                    continue
                m = decode_segmentation(seg, h, w)
                if a.get("iscrowd", 0):
                    ignore |= m
                elif m.any():
                    insts.append(Instance(int(a["id"]), int(a["category_id"]), m))
            return FrameAnnotation(insts, ignore)

        name = str(Path(v["file_names"][0]).parent) if v["file_names"] else str(v["id"])
        seqs.append(Sequence(name, [str(root / f) for f in v["file_names"]], h, w, fn,
                             {"dataset": "youtube_vis", "video_id": v["id"]}))
    return seqs, cats


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
        seqs, cats = load(json_path, data=data)
        if class_names is not None:
            check_class_ids(cats, class_names, str(json_path))
        return seqs
