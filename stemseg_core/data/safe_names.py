"""Names from data (sequence names from a seqmap or a bag's frames.csv, frame names) that
become file names: they must be plain names, so that no data file can make a writer put a file
outside its output folder (``../../x``, ``/etc/x``) or read one from elsewhere.

>>> check_plain_name("0002", "sequence name")
'0002'
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["MAX_NAME_CHARS", "check_plain_name", "child_path"]

#: Longest name accepted (the usual file-name limit of Linux file systems, in characters).
MAX_NAME_CHARS = 255


def check_plain_name(name: object, what: str, *, source: str = "") -> str:
    """``name`` if it is a plain file name, else ValueError naming it, ``what`` (e.g.
    ``"sequence name"``) and where it came from (``source``, e.g. ``"bag/frames.csv"``):
    "sequence name '../../x' from bag/frames.csv is not a plain file name (...)".

    Plain: a non-empty string of at most :data:`MAX_NAME_CHARS` characters, not ``.`` or
    ``..``, without ``/`` or ``\\``, NUL or other control characters.
    """
    shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else \
        f"{name[:80]!r}... ({len(name)} characters)"
    if source:
        shown += f" from {source}"
    if not isinstance(name, str):
        raise ValueError(f"{what} {shown} is not a plain file name: expected a string, got "
                         f"{type(name).__name__}")
    problem = None
    if not name:
        problem = "it is empty"
    elif name in (".", ".."):
        problem = "it names a folder ('.' or '..')"
    elif "/" in name or "\\" in name:
        problem = "it contains a path separator ('/' or '\\')"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it contains a control character"
    elif len(name) > MAX_NAME_CHARS:
        problem = f"it is longer than {MAX_NAME_CHARS} characters"
    if problem:
        raise ValueError(f"{what} {shown} is not a plain file name ({problem}); names from "
                         f"data become file names in the output folder, so they may not hold "
                         f"'/', '\\', '..' or control characters: rename it in the data")
    return name


def child_path(folder: str | Path, name: object, what: str, suffix: str = "", *,
               source: str = "") -> Path:
    """``folder / (name + suffix)`` after :func:`check_plain_name`: always directly inside
    ``folder``."""
    return Path(folder) / (check_plain_name(name, what, source=source) + suffix)
