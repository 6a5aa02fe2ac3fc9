"""On-disk cache of built backend artifacts (ONNX files, OpenVINO IR, TensorRT engines).

An artifact is valid only for what it was built from, so each one lives in a folder named by the
hash of its key: weights hash, model config hash, backend and its version, device (GPU model and
compute capability, or the CPU's model and ISA flags), input size, clip length, precision and the
graph part. A key seen for the first time is built; the log line then names the parts of the key
that differ from the most recent artifact of the same backend and part ("weights", "device",
...). A folder whose files do not match the checksums in its manifest, or that fails to load, is
deleted and rebuilt: a damaged cache never stops the tracker. Artifacts are plain files (ONNX
protobuf, OpenVINO XML + weights, serialized TensorRT engines): loading runs no pickled code.

Layout: ``<root>/<backend>/<part>-<digest>/`` with the artifact files and ``manifest.json``
(``{"key": {...}, "files": {name: sha256}}``), written last, atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Bumped when the exported graphs change in a way the other key parts do not show.
GRAPH_VERSION = 1
#: CPU flags that change which kernels a CPU backend picks (x86 ISA extensions).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16",
             "amx_int8", "amx_tile", "avx_vnni")

T = TypeVar("T")


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/stemseg/engines, or ~/.cache/stemseg/engines."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stemseg" / "engines"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of the model's state_dict, names and values."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        if v.numel():
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def config_hash(cfg_dict: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg_dict, sort_keys=True).encode()).hexdigest()[:16]


def cpu_description() -> str:
    """CPU model name and the ISA flags that matter to kernels (from /proc/cpuinfo on Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and ":" in line:
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and ":" in line:
            flags = set(line.split(":", 1)[1].split())
            break
    have = [f for f in CPU_FLAGS if f in flags]
    return f"{name} [{' '.join(have)}]"


def device_description(device: torch.device) -> str:
    """What an artifact built on ``device`` depends on: GPU model + compute capability, or CPU."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        return f"{p.name} sm_{p.major}{p.minor}"
    return cpu_description()


class ArtifactCache:
    """Folders of built artifacts under ``root``, one per key (see module doc)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        #: folders of the artifacts loaded or built through this object, in order
        self.used: list[Path] = []
        #: how many of them were built (the others were loaded from the cache)
        self.built = 0

    def folder(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / str(key["backend"]) / f"{key['part']}-{digest}"

    def get_or_build(self, key: dict[str, Any], build: Callable[[Path], None],
                     load: Callable[[Path], T]) -> tuple[T, bool]:
        """Load the artifact of ``key``, building it first if absent or damaged.

        ``build(folder)`` writes the artifact files into an empty folder; ``load(folder)``
        returns the loaded artifact (and raises if it cannot). Returns (artifact, built_now).
        """
        folder = self.folder(key)
        if folder.is_dir():
            problem = self._check(folder, key)
            if problem is None:
                try:
                    loaded = load(folder)
                    self.used.append(folder)
                    return loaded, False
                except Exception as e:  # any loader error means a damaged artifact
                    problem = f"it does not load ({type(e).__name__}: {e})"
            log.warning("cached %s %s artifact %s is unusable: %s; rebuilding", key["backend"],
                        key["part"], folder, problem)
            shutil.rmtree(folder, ignore_errors=True)
        else:
            log.info("%s %s: %s; building %s", key["backend"], key["part"],
                     self._what_changed(key), folder)
        self._build_into(folder, key, build)
        self.built += 1
        loaded = load(folder)
        self.used.append(folder)
        return loaded, True

    def _build_into(self, folder: Path, key: dict[str, Any],
                    build: Callable[[Path], None]) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
        try:
            build(tmp)
            files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {"key": key, "files": files}
            (tmp / (MANIFEST + ".part")).write_text(json.dumps(manifest, indent=2))
            os.replace(tmp / (MANIFEST + ".part"), tmp / MANIFEST)
            if folder.exists():  # built meanwhile by another process: keep ours
                shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _check(folder: Path, key: dict[str, Any]) -> str | None:
        """None if the folder holds a complete artifact for ``key``, else what is wrong."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"no readable manifest ({type(e).__name__})"
        if manifest.get("key") != key:
            return "its manifest holds another key"
        for name, digest in files.items():
            p = folder / name
            if not p.is_file():
                return f"{name} is missing"
            if file_sha256(p) != digest:
                return f"{name} does not match its checksum (damaged or truncated)"
        return None

    def _what_changed(self, key: dict[str, Any]) -> str:
        """Which key parts differ from the newest artifact of the same backend and part."""
        base = self.root / str(key["backend"])
        newest: tuple[float, dict[str, Any]] | None = None
        for m in base.glob(f"{key['part']}-*/{MANIFEST}"):
            try:
                other = json.loads(m.read_text())["key"]
                mtime = m.stat().st_mtime
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if newest is None or mtime > newest[0]:
                newest = (mtime, other)
        if newest is None:
            return "no cached artifact yet"
        other = newest[1]
        changed = [f"{k} ({other.get(k)!r} -> {key.get(k)!r})" for k in sorted(key)
                   if other.get(k) != key.get(k)]
        return "key changed since the last build: " + "; ".join(changed)
