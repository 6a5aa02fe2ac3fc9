"""The checkpoint index (backends/checkpoint_index.py): written and read back by file hash; a
damaged, tampered or foreign entry is refused (deleted) under the cache's trust rules."""
from __future__ import annotations

import json
import os

import pytest

from stemseg_core.backends.cache import MANIFEST, ArtifactCache
from stemseg_core.backends.checkpoint_index import (
    INDEX_FILE,
    IndexEntry,
    index_key,
    read_index,
    write_index,
)
from stemseg_core.checkpoint import file_sha256

SHA = "ab" * 32
ENTRY = IndexEntry({"model": {"clip_length": 4}, "inference": {}}, "0123456789abcdef", "2.14.1")


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "engines"
    root.mkdir(mode=0o700)
    return ArtifactCache(root)


def _folder(cache):
    return cache.folder(index_key(SHA))


def test_round_trip_by_file_hash_and_rewrite_on_change(cache):
    assert read_index(cache, SHA) is None
    write_index(cache, SHA, ENTRY)
    assert read_index(cache, SHA) == ENTRY
    assert read_index(cache, "cd" * 32) is None  # another file: another entry
    newer = IndexEntry(ENTRY.config, ENTRY.weights, "2.15.0")
    write_index(cache, SHA, newer)
    assert read_index(cache, SHA) == newer


def test_damaged_entry_is_refused_and_deleted(cache):
    write_index(cache, SHA, ENTRY)
    path = _folder(cache) / INDEX_FILE
    text = path.read_text().replace("0123456789abcdef", "fedcba9876543210")
    path.write_text(text)  # the manifest's SHA-256 no longer matches
    assert read_index(cache, SHA) is None
    assert not _folder(cache).exists()


@pytest.mark.parametrize("content", [
    {"config": {"model": {}}, "weights": "not-a-hash", "torch": "2.14.1"},
    {"config": "x", "weights": "0123456789abcdef", "torch": "2.14.1"},
    {"config": {"model": {}}, "weights": "0123456789abcdef"},
    ["a list"],
])
def test_entry_of_another_shape_is_refused_even_with_a_valid_manifest(cache, content):
    write_index(cache, SHA, ENTRY)
    folder = _folder(cache)
    (folder / INDEX_FILE).write_text(json.dumps(content))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][INDEX_FILE] = file_sha256(folder / INDEX_FILE)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert read_index(cache, SHA) is None
    assert not folder.exists()


def test_entry_writable_by_others_is_refused(cache):
    write_index(cache, SHA, ENTRY)
    os.chmod(_folder(cache) / INDEX_FILE, 0o666)
    assert read_index(cache, SHA) is None
    assert not _folder(cache).exists()
