"""Training data formats, one module each, in ``stemseg_core.registry.DATASET_FORMATS``.

A format is a :class:`DatasetFormat` subclass registered under its name::

    @DATASET_FORMATS.register("my_format")
    class MyFormat(DatasetFormat):
        priority = 50                       # detection order for data.format=auto
        @classmethod
        def detect(cls, path): ...          # does `path` hold this format?
        @classmethod
        def load(cls, path, split, class_names): ...   # -> list[Sequence]

Adding a format is one new file in this folder (or a plugin module, see stemseg_core/registry.py):
its modules are imported on the first look-up; config validation reads the names from there.
"""
from __future__ import annotations

from pathlib import Path

from stemseg_core.data.sequence import Sequence
from stemseg_core.registry import DATASET_FORMATS


class DatasetFormat:
    """One on-disk layout of training data (see the package doc)."""

    #: Lower is tried first when detecting; the fallback format has the highest.
    priority: int = 50

    @classmethod
    def detect(cls, path: Path) -> bool:
        """True when ``path`` holds data of this format."""
        return False

    @classmethod
    def load(cls, path: Path, split: str, class_names: list[str] | tuple[str, ...] | None
             ) -> list[Sequence]:
        """The sequences of ``split``; with ``class_names``, check every category has one."""
        raise NotImplementedError


def format_names() -> list[str]:
    """Registered format names in detection order."""
    return [name for name, _ in sorted(DATASET_FORMATS, key=lambda item: item[1].priority)]


def check_class_ids(class_ids: dict[int, str], class_names: list[str] | tuple[str, ...],
                    source: str) -> None:
    """Every data set category must have a model class (else it would be silently ignored)."""
    from stemseg_core.errors import DataFormatError

    missing = {i: n for i, n in class_ids.items() if not 1 <= i < len(class_names)}
    if missing:
        shown = ", ".join(f"{i} '{n}'" for i, n in sorted(missing.items())[:8])
        raise DataFormatError(
            f"{source}: categories {shown} have no model class: model.class_names has "
            f"{len(class_names)} entries (index 0 = background), so ids must be 1.."
            f"{len(class_names) - 1}; list the data set's categories in model.class_names "
            f"(config/model/stemseg_r101_youtube_vis.yaml lists YouTube-VIS 2019's 40)")


__all__ = ["DATASET_FORMATS", "DatasetFormat", "check_class_ids", "format_names"]
