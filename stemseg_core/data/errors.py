"""The error type of the data readers: the message starts with ``file:line`` when known."""
from __future__ import annotations

from pathlib import Path

from stemseg_core.config import ConfigError


class DataFormatError(ConfigError):
    """Data on disk does not hold what its format needs (a malformed line, a missing frame, a
    mask of the wrong size, ...). ``path`` and ``line`` (1-based) name where, when known; the
    message says what was expected. The CLI prints it and exits with status 2."""

    def __init__(self, message: str, path: str | Path | None = None,
                 line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        where = "" if path is None else (f"{path}:{line}: " if line else f"{path}: ")
        super().__init__(where + message)


__all__ = ["DataFormatError"]
