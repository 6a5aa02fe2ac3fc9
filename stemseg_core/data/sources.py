"""Training data from any supported layout: KITTI MOTS, DAVIS 2017/2019 or YouTube-VIS.

``load_training_sequences(path, split, fmt)`` returns the :class:`Sequence` list that
:class:`~stemseg_core.data.clips.ClipDataset` samples from. With ``fmt="auto"`` the layout is
recognised from what ``path`` holds:

- YouTube-VIS: ``path`` is the annotation JSON, or a folder holding one JSON with ``videos``
  (images: :func:`stemseg_core.data.youtube_vis.default_image_root`);
- DAVIS: ``path/JPEGImages`` and ``path/Annotations[_unsupervised]`` (the unsupervised
  annotations of DAVIS 2019 are preferred when present; splits from ``ImageSets/<year>``);
- KITTI MOTS: anything else (``training/image_02``, ``instances_txt`` / ``instances``), which is
  also what ``stemseg synth`` writes.
"""
from __future__ import annotations

import json
from pathlib import Path

from stemseg_core.config import DATA_FORMATS as FORMATS
from stemseg_core.data.errors import DataFormatError
from stemseg_core.data.kitti_mots import Sequence


def _youtube_vis_json(path: Path) -> Path | None:
    """The YouTube-VIS annotation JSON at or directly inside ``path``, if there is one."""
    if path.is_file() and path.suffix == ".json":
        return path
    if not path.is_dir():
        return None
    found = []
    for p in sorted(path.glob("*.json")):
        try:
            with open(p) as f:
                head = f.read(4096)
        except OSError:
            continue
        if '"videos"' in head or p.stem in ("instances", "train", "valid", "val"):
            found.append(p)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataFormatError(f"{path} holds several YouTube-VIS JSON files ({names}): pass the "
                              f"one to train on as --data")
    return found[0] if found else None


def detect_format(path: str | Path) -> str:
    """'kitti_mots', 'davis' or 'youtube_vis' for the data at ``path`` (module doc)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    if _youtube_vis_json(path) is not None:
        return "youtube_vis"
    if (path / "JPEGImages").is_dir() and any(path.glob("Annotations*")):
        return "davis"
    return "kitti_mots"


def _davis_annotations(root: Path) -> str:
    for name in ("Annotations_unsupervised", "Annotations"):
        if (root / name).is_dir():
            return name
    raise DataFormatError(f"DAVIS folder {root} has no Annotations/ or "
                          f"Annotations_unsupervised/")


def _davis_year(root: Path, split: str) -> str:
    """Newest ImageSets/<year> that lists ``split``."""
    sets = root / "ImageSets"
    years = sorted((p.name for p in sets.iterdir() if (p / f"{split}.txt").is_file()),
                   reverse=True) if sets.is_dir() else []
    if not years:
        raise DataFormatError(f"DAVIS folder {root}: no ImageSets/<year>/{split}.txt (split "
                              f"'{split}'); DAVIS 2017/2019 ship train.txt and val.txt")
    return years[0]


def _davis_resolution(root: Path) -> str:
    sizes = sorted(p.name for p in (root / "JPEGImages").iterdir() if p.is_dir())
    if "480p" in sizes:
        return "480p"
    if len(sizes) == 1:
        return sizes[0]
    raise DataFormatError(f"DAVIS folder {root}/JPEGImages: expected a 480p/ (or a single "
                          f"resolution) folder, found {sizes or 'none'}")


def check_class_ids(class_ids: dict[int, str], class_names: list[str] | tuple[str, ...],
                    source: str) -> None:
    """Every data set category must have a model class (else it would be silently ignored)."""
    missing = {i: n for i, n in class_ids.items() if not 1 <= i < len(class_names)}
    if missing:
        shown = ", ".join(f"{i} '{n}'" for i, n in sorted(missing.items())[:8])
        raise DataFormatError(
            f"{source}: categories {shown} have no model class: model.class_names has "
            f"{len(class_names)} entries (index 0 = background), so ids must be 1.."
            f"{len(class_names) - 1}; list the data set's categories in model.class_names "
            f"(config/model/stemseg_r101_youtube_vis.yaml lists YouTube-VIS 2019's 40)")


def load_training_sequences(path: str | Path, split: str = "train", fmt: str = "auto",
                            class_names: list[str] | tuple[str, ...] | None = None
                            ) -> list[Sequence]:
    """The sequences of ``split`` in the data at ``path`` (format: module doc)."""
    if fmt not in FORMATS:
        raise DataFormatError(f"data format {fmt!r} is not supported; allowed: "
                              f"{', '.join(FORMATS)}")
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "youtube_vis":
        from stemseg_core.data import youtube_vis

        json_path = _youtube_vis_json(path)
        if json_path is None:
            raise DataFormatError(f"no YouTube-VIS annotation JSON at {path}")
        with open(json_path) as f:
            data = json.load(f)
        if not data.get("annotations"):
            raise DataFormatError(f"{json_path} has no annotations (YouTube-VIS's valid/test "
                                  f"JSON carry none): train on the train JSON")
        seqs, cats = youtube_vis.load(json_path, data=data)
        if class_names is not None:
            check_class_ids(cats, class_names, str(json_path))
        return seqs
    if fmt == "davis":
        from stemseg_core.data import davis

        seqs = davis.load_split(path, split, _davis_year(path, split), _davis_resolution(path),
                                _davis_annotations(path))
        if class_names is not None:
            check_class_ids({1: "object"}, class_names, f"DAVIS {path}")
        return seqs
    from stemseg_core.data import kitti_mots

    return kitti_mots.load_split(path, split)


__all__ = ["FORMATS", "DataFormatError", "check_class_ids", "detect_format",
           "load_training_sequences"]
