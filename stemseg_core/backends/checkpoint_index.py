"""The checkpoint index: what a process without torch needs to find a checkpoint's built graphs
in the engine cache, keyed by the checkpoint FILE's SHA-256 (cheap to compute, nothing
unpickled).

Written whenever a process loads the checkpoint with torch (the node's first start, `stemseg
export`): the checkpoint's config (as stored, machine paths cleared: checkpoint.MACHINE_PATHS),
the weights hash and the torch version of that process. A torch-free process reads it, applies
its overrides to the config and computes the very artifact keys a torch process computes
(Backend.artifact_key), so it loads the ONNX files / OpenVINO IR built then.

An index entry is an ordinary cache entry (backend ``index``, part ``checkpoint``): the cache's
trust rules hold (owner, modes, the manifest's SHA-256 of ``index.json``); an entry whose JSON
is not the expected shape is deleted like a damaged artifact.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemseg_core.backends.cache import ArtifactCache

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
#: Bumped when the entry's content changes meaning.
INDEX_VERSION = 1
_WEIGHTS_RE = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class IndexEntry:
    """``config``: the checkpoint's config dict; ``weights``: artifact_key.weights_hash of its
    model; ``torch``: the torch version that loaded it (the ONNX graphs' key part)."""

    config: dict[str, Any]
    weights: str
    torch: str


def index_key(file_sha256: str) -> dict[str, Any]:
    return {"backend": "index", "part": "checkpoint", "file_sha256": file_sha256,
            "index_version": INDEX_VERSION}


def _parse(folder: Path) -> IndexEntry:
    """The entry in ``folder``; ValueError where the JSON is not an index entry."""
    data = json.loads((folder / INDEX_FILE).read_text())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    config, weights, torch = data.get("config"), data.get("weights"), data.get("torch")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError("no config with a model section")
    if not isinstance(weights, str) or not _WEIGHTS_RE.fullmatch(weights):
        raise ValueError(f"weights {str(weights)[:40]!r} is not a 16-digit hash")
    if not isinstance(torch, str) or not torch or len(torch) > 64:
        raise ValueError("no torch version")
    return IndexEntry(config, weights, torch)


def read_index(cache: ArtifactCache, file_sha256: str) -> IndexEntry | None:
    """The entry of the checkpoint with this file hash, or None (absent, or damaged: deleted)."""
    return cache.get(index_key(file_sha256), _parse)


def write_index(cache: ArtifactCache, file_sha256: str, entry: IndexEntry) -> None:
    """Write the entry unless the cache holds the same one already."""
    if read_index(cache, file_sha256) == entry:
        return
    text = json.dumps({"config": entry.config, "weights": entry.weights,
                       "torch": entry.torch}, sort_keys=True)
    folder = cache.put(index_key(file_sha256), lambda d: (d / INDEX_FILE).write_text(text))
    log.info("checkpoint index for %s... written to %s", file_sha256[:12], folder)


__all__ = ["INDEX_FILE", "IndexEntry", "index_key", "read_index", "write_index"]
