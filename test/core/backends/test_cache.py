"""ArtifactCache: build once, load after; a changed key rebuilds naming the change; a damaged
entry is rebuilt instead of failing."""
from __future__ import annotations

import logging

import pytest

from stemseg_core.backends.artifact_key import cpu_description, weights_hash
from stemseg_core.backends.cache import MANIFEST, ArtifactCache


def _key(**kw):
    key = {"backend": "openvino", "part": "encoder", "weights": "aaaa", "shape": "3x64x96",
           "precision": "fp32", "device": "cpu X [avx2]", "version": "1.0"}
    key.update(kw)
    return key


class Builder:
    def __init__(self, payload=b"artifact"):
        self.builds = 0
        self.payload = payload

    def build(self, folder):
        self.builds += 1
        (folder / "a.bin").write_bytes(self.payload + bytes([self.builds]))

    @staticmethod
    def load(folder):
        data = (folder / "a.bin").read_bytes()
        if not data.startswith(b"artifact"):
            raise ValueError("not an artifact")
        return data


def test_built_once_then_loaded(tmp_path):
    cache, b = ArtifactCache(tmp_path), Builder()
    first, built = cache.get_or_build(_key(), b.build, b.load)
    again, built2 = cache.get_or_build(_key(), b.build, b.load)
    assert (built, built2) == (True, False) and b.builds == 1 and first == again
    assert not [p for p in (tmp_path / "openvino").iterdir() if ".tmp-" in p.name]


def test_changed_key_rebuilds_and_names_the_change(tmp_path, caplog):
    cache, b = ArtifactCache(tmp_path), Builder()
    cache.get_or_build(_key(), b.build, b.load)
    with caplog.at_level(logging.INFO, logger="stemseg_core.backends.cache"):
        _, built = cache.get_or_build(_key(weights="bbbb", shape="3x96x128"), b.build, b.load)
    assert built and b.builds == 2
    msg = caplog.text
    assert "weights ('aaaa' -> 'bbbb')" in msg and "shape ('3x64x96' -> '3x96x128')" in msg
    assert "precision" not in msg  # unchanged parts are not named
    # both keys stay cached: switching back loads, no third build
    _, built = cache.get_or_build(_key(), b.build, b.load)
    assert not built and b.builds == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_damaged_entry_is_rebuilt(tmp_path, caplog, damage):
    cache, b = ArtifactCache(tmp_path), Builder()
    cache.get_or_build(_key(), b.build, b.load)
    folder = cache.folder(_key())
    art = folder / "a.bin"
    if damage == "truncate":
        art.write_bytes(art.read_bytes()[:3])
    elif damage == "flip":
        data = bytearray(art.read_bytes())
        data[0] ^= 0xFF
        art.write_bytes(bytes(data))
    elif damage == "delete":
        art.unlink()
    else:
        (folder / MANIFEST).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="stemseg_core.backends.cache"):
        data, built = cache.get_or_build(_key(), b.build, b.load)
    assert built and b.builds == 2 and data == b"artifact\x02"
    assert "unusable" in caplog.text and "rebuilding" in caplog.text


def test_loader_failure_is_rebuilt(tmp_path):
    """Checksums match but the runtime cannot read it (e.g. built by a broken version)."""
    cache = ArtifactCache(tmp_path)
    bad = Builder(payload=b"garbage")
    with pytest.raises(ValueError):
        cache.get_or_build(_key(), bad.build, bad.load)  # a fresh build that cannot load: raise
    good = Builder()
    data, built = cache.get_or_build(_key(), good.build, good.load)
    assert built and data.startswith(b"artifact")


def test_key_parts(tiny_config):
    import torch

    from stemseg_core.model import build_model

    torch.manual_seed(0)
    a, b = build_model(tiny_config), build_model(tiny_config)
    assert weights_hash(a) != weights_hash(b)
    b.load_state_dict(a.state_dict())
    assert weights_hash(a) == weights_hash(b)
    assert cpu_description()  # a CPU model name (and flags where /proc/cpuinfo has them)


# --------------------------------------------------------------------------------------------
# Trust (issue 35): only entries this user wrote, exactly as the manifest lists them


def _plant(cache, key, files, manifest_files=None, payload=b"artifact-planted"):
    """An entry another process could write: the key is computable by anyone."""
    import hashlib
    import json

    folder = cache.folder(key)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if manifest_files is None:
        manifest_files = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    (folder / MANIFEST).write_text(json.dumps({"key": key, "files": manifest_files}))
    return folder


@pytest.mark.parametrize("attack", ["empty map", "absolute name", "dotdot name", "unlisted file",
                                    "tampered", "group-writable entry", "writable artifact",
                                    "symlink artifact", "manifest names itself"])
def test_planted_entry_is_not_loaded(tmp_path, caplog, attack):
    import hashlib
    import os

    root = tmp_path / "cache"
    cache, b = ArtifactCache(root), Builder()
    evil = b"artifact-EVIL"
    outside = tmp_path / "evil.bin"
    outside.write_bytes(evil)
    sha = hashlib.sha256(evil).hexdigest()
    if attack == "empty map":  # hashes "prove" nothing: a.bin is not listed at all
        _plant(cache, _key(), {"a.bin": evil}, manifest_files={})
    elif attack == "absolute name":
        _plant(cache, _key(), {}, manifest_files={str(outside): sha})
    elif attack == "dotdot name":
        _plant(cache, _key(), {}, manifest_files={"../../evil.bin": sha})
    elif attack == "unlisted file":
        _plant(cache, _key(), {"a.bin": b"artifact-ok", "b.bin": evil},
               manifest_files={"a.bin": hashlib.sha256(b"artifact-ok").hexdigest()})
    elif attack == "tampered":
        folder = _plant(cache, _key(), {"a.bin": b"artifact-ok"})
        (folder / "a.bin").write_bytes(evil)
    elif attack == "group-writable entry":  # consistent, but anyone in the group could write it
        os.chmod(_plant(cache, _key(), {"a.bin": evil}), 0o770)
    elif attack == "writable artifact":
        os.chmod(_plant(cache, _key(), {"a.bin": evil}) / "a.bin", 0o666)
    elif attack == "symlink artifact":
        folder = _plant(cache, _key(), {}, manifest_files={"a.bin": sha})
        (folder / "a.bin").symlink_to(outside)
    else:
        _plant(cache, _key(), {"a.bin": evil},
               manifest_files={"a.bin": sha, MANIFEST: sha})
    with caplog.at_level(logging.WARNING, logger="stemseg_core.backends.cache"):
        data, built = cache.get_or_build(_key(), b.build, b.load)
    assert built and b.builds == 1 and data == b"artifact\x01"  # ours, not the planted one
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert outside.read_bytes() == evil  # nothing outside the entry touched
    again, built = ArtifactCache(root).get_or_build(_key(), b.build, b.load)
    assert not built and again == b"artifact\x01"  # the rebuilt entry is trusted


@pytest.mark.parametrize("reason", [
    ("why", "file names"), ("writable", "entry")])
def test_reasons_are_logged(tmp_path, caplog, reason):
    import hashlib

    cache = ArtifactCache(tmp_path / "c")
    if reason[0] == "why":
        _plant(cache, _key(), {}, manifest_files={"../x": hashlib.sha256(b"").hexdigest()})
        expect = "file name in the manifest '../x' is not a plain file name"
    else:
        folder = _plant(cache, _key(), {"a.bin": b"artifact"})
        folder.chmod(0o777)
        expect = "is writable by group and others (mode 0777)"
    with caplog.at_level(logging.WARNING, logger="stemseg_core.backends.cache"):
        cache.get_or_build(_key(), Builder().build, Builder.load)
    assert expect in caplog.text


def test_untrusted_root_is_not_used(tmp_path, caplog, monkeypatch):
    import os
    import stat

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    b = Builder()
    planted = ArtifactCache(tmp_path / "mine")  # a consistent entry in the shared folder
    planted.root = shared
    planted.get_or_build(_key(), Builder(b"artifact-EVIL").build, Builder.load)
    with caplog.at_level(logging.WARNING, logger="stemseg_core.backends.cache"):
        cache = ArtifactCache(shared)
    assert cache.root == tmp_path / "xdg" / "stemseg" / "engines" and cache.root != shared
    assert "writable by group and others (mode 0777)" in caplog.text
    assert str(shared) in caplog.text and cache.requested_root == shared
    data, built = cache.get_or_build(_key(), b.build, b.load)
    assert built and data == b"artifact\x01"
    for d in (cache.root, cache.root.parent, cache.folder(_key()), cache.folder(_key()).parent):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d  # created private

    # when the default dir is not private either: a fresh 0700 temporary folder
    (tmp_path / "xdg").chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg" / "sub"))
    cache = ArtifactCache(shared)
    assert cache.root.name.startswith("stemseg-engines-")
    assert stat.S_IMODE(os.stat(cache.root).st_mode) == 0o700
    cache.root.rmdir()


def test_private_dir_checks(tmp_path):
    import os

    from stemseg_core.backends.cache import check_private_dir

    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    assert check_private_dir(d) is None
    assert "owned by uid" in check_private_dir(d, uid=os.geteuid() + 1)
    (tmp_path / "a").chmod(0o777)  # a parent anyone may rename entries in
    assert "(above it) is writable by others and not sticky" in check_private_dir(d)
    (tmp_path / "a").chmod(0o1777)  # sticky, as /tmp: fine
    assert check_private_dir(d) is None
    link = tmp_path / "link"
    link.symlink_to(d)
    assert check_private_dir(link) is None  # a link to a private folder is that folder
    assert "cannot be checked" in check_private_dir(tmp_path / "missing")


def test_builds_must_be_plain_files(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(RuntimeError, match="wrote no files"):
        cache.get_or_build(_key(), lambda d: None, Builder.load)
    with pytest.raises(RuntimeError, match="sub, which is not a plain file"):
        cache.get_or_build(_key(), lambda d: (d / "sub").mkdir(), Builder.load)
    assert not list((tmp_path / "openvino").iterdir())  # nothing half-built left


def test_least_recently_used_entries_are_pruned(tmp_path):
    import os

    def payload_builder(tag):
        def build(folder):
            (folder / "a.bin").write_bytes(b"artifact" + tag * 1000)
        return build

    first = ArtifactCache(tmp_path, max_bytes=None)
    for i, tag in enumerate([b"A", b"B", b"C"]):
        first.get_or_build(_key(weights=tag.decode()), payload_builder(tag), Builder.load)
        os.utime(first.folder(_key(weights=tag.decode())), (1000 + i, 1000 + i))  # A oldest
    size = first.entries()[0][1]
    assert [f.name for _, _, f in first.entries()] == \
        [first.folder(_key(weights=w)).name for w in "ABC"]
    # a new process: loads A (now the most recently used), builds D; cap = two entries
    cache = ArtifactCache(tmp_path, max_bytes=2 * size + size // 2)
    _, built = cache.get_or_build(_key(weights="A"), payload_builder(b"A"), Builder.load)
    assert not built
    cache.get_or_build(_key(weights="D"), payload_builder(b"D"), Builder.load)
    left = {f.name for _, _, f in cache.entries()}
    assert left == {cache.folder(_key(weights=w)).name for w in "AD"}  # B and C pruned
    assert cache.prune(0) == []  # what this object uses is never pruned
    assert len(ArtifactCache(tmp_path).prune(0)) == 2  # another object may prune them


def test_checkpoint_does_not_choose_the_engine_cache(tmp_path, tiny_config, caplog):
    """A checkpoint's own inference.engine_cache_dir (e.g. a planted folder) is ignored; only
    the caller's override sets it."""
    from stemseg_core.checkpoint import load_checkpoint, save_checkpoint

    tiny_config.inference.engine_cache_dir = str(tmp_path / "planted")
    path = save_checkpoint(tmp_path / "c.pt", {}, tiny_config)
    with caplog.at_level(logging.INFO, logger="stemseg_core.checkpoint"):
        cfg, payload = load_checkpoint(path)
    assert cfg.inference.engine_cache_dir == ""
    assert "ignoring the checkpoint's inference.engine_cache_dir" in caplog.text
    assert payload["config"]["inference"]["engine_cache_dir"] == str(tmp_path / "planted")
    cfg, _ = load_checkpoint(path, [f"inference.engine_cache_dir={tmp_path / 'mine'}"])
    assert cfg.inference.engine_cache_dir == str(tmp_path / "mine")
