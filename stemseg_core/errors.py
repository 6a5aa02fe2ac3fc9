"""The core's error types, at its bottom (imports nothing of ours): the config's and the
registries' ConfigError, and the data readers' DataFormatError."""
from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message says which and why."""


class DataFormatError(ConfigError):
    """Data on disk does not hold what its format needs (a malformed line, a missing frame, a
    mask of the wrong size, ...). ``path`` and ``line`` (1-based) name where, when known (the
    message then starts with ``file:line``); the message says what was expected. The CLI
    prints it and exits with status 2."""

    def __init__(self, message: str, path: str | Path | None = None,
                 line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        where = "" if path is None else (f"{path}:{line}: " if line else f"{path}: ")
        super().__init__(where + message)


__all__ = ["ConfigError", "DataFormatError"]
