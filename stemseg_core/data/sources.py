"""Training data from any registered layout (:mod:`stemseg_core.data.formats`): KITTI MOTS,
DAVIS 2017/2019, YouTube-VIS, or one more file in that folder.

``load_training_sequences(path, split, fmt)`` returns the :class:`Sequence` list that
:class:`~stemseg_core.data.clips.ClipDataset` samples from. With ``fmt="auto"`` the layout is
recognised from what ``path`` holds: the registered formats are asked in order of their
``priority`` (YouTube-VIS: an annotation JSON; DAVIS: ``JPEGImages`` + ``Annotations*``;
KITTI MOTS, also what ``stemseg synth`` writes: anything else).
"""
from __future__ import annotations

from pathlib import Path

from stemseg_core.data.formats import DATASET_FORMATS, check_class_ids, format_names
from stemseg_core.data.sequence import Sequence
from stemseg_core.errors import DataFormatError


def detect_format(path: str | Path) -> str:
    """The name of the first registered format that recognises the data at ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    for name in format_names():
        if DATASET_FORMATS.get(name).detect(path):
            return name
    raise DataFormatError(f"no data format recognises {path}; formats: "
                          f"{', '.join(format_names())}")


def load_training_sequences(path: str | Path, split: str = "train", fmt: str = "auto",
                            class_names: list[str] | tuple[str, ...] | None = None
                            ) -> list[Sequence]:
    """The sequences of ``split`` in the data at ``path`` (format: module doc)."""
    if fmt != "auto" and fmt not in DATASET_FORMATS:
        raise DataFormatError(f"data format {fmt!r} is not supported; allowed: auto, "
                              f"{', '.join(format_names())}")
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    return DATASET_FORMATS.get(fmt).load(path, split, class_names)


__all__ = ["DataFormatError", "check_class_ids", "detect_format", "load_training_sequences"]
