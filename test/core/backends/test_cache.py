"""ArtifactCache: build once, load after; a changed key rebuilds naming the change; a damaged
entry is rebuilt instead of failing."""
from __future__ import annotations

import logging

import pytest

from stemseg_core.backends.cache import MANIFEST, ArtifactCache, cpu_description, weights_hash


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
