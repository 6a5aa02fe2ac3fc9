"""Checkpoints: one file with weights, config, class names and a format version, read without
running code.

Layout (a dict saved with ``torch.save``; only tensors and plain Python data inside)::

    {"format": "stemseg-checkpoint", "version": 2, "config": Config.to_dict(),
     "class_names": [...], "model": state_dict, "train_state": {...} | absent,
     "digest": sha256 hex of the entries above}

Loading uses ``torch.load(weights_only=True)``: a file whose unpickling would need anything but
tensors and plain data (a class, a function: something that could run code) is refused with
:class:`UnsafeCheckpointError`, unless the caller trusts the file and passes ``allow_pickle=True``
(``--allow-pickle`` on the CLI, the ``allow_pickle`` node parameter). The numpy array types of
version-1 training states are the only extra types allowed.

Versions: 1 (no digest; training RNG state holds a numpy array) is migrated on load, 2 is
current; anything else is refused naming both versions. Writes are atomic (temporary file, fsync,
``os.replace``), so a kill at any moment leaves the previous file or the new one, never half of
one; a file damaged afterwards fails ``torch.load`` or the digest check
(:class:`DamagedCheckpointError`).

Pinning: ``file_sha256(path)`` is the SHA-256 of the file's bytes; ``load_checkpoint(...,
sha256=...)`` refuses a file with another hash (:class:`ChecksumMismatchError`) before anything
in it is unpickled.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

from stemseg_core.config import Config, config_from_dict
from stemseg_core.config.loading import Overrides

log = logging.getLogger(__name__)

FORMAT = "stemseg-checkpoint"
#: The format version this stemseg writes.
VERSION = 2
#: Versions this stemseg reads (older ones are migrated on load).
READABLE_VERSIONS = (1, 2)
#: Key added by :func:`load_checkpoint` to the returned payload (never stored in the file).
FILE_SHA256_KEY = "file_sha256"

#: Types besides tensors and plain data that ``weights_only`` loading accepts: numpy arrays of
#: numbers, as version-1 checkpoints hold in their numpy RNG state. None of them runs code.
_SAFE_NUMPY_GLOBALS = [np.ndarray, np.dtype, np.dtypes.UInt32DType, _reconstruct]

#: The entries covered by the digest (other entries are not part of the format).
_DIGESTED = ("format", "version", "config", "class_names", "model", "train_state")

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """The file is missing, damaged, unsafe, not a stemseg checkpoint, or of an unsupported
    version. The message names the file, the problem and what to do."""


class UnsafeCheckpointError(CheckpointError):
    """Reading the file needs full unpickling (it could run code); refused without
    ``allow_pickle``."""


class ChecksumMismatchError(CheckpointError):
    """The file's SHA-256 differs from the pinned one."""


class DamagedCheckpointError(CheckpointError):
    """The file is truncated or its contents do not match the digest written with it."""


# ----------------------------------------------------------------------------------------------
# Hashes


def file_sha256(path: str | Path) -> str:
    """SHA-256 (lower-case hex) of a file's bytes: what `--sha256` / `checkpoint_sha256` pin."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def normalize_sha256(value: str | None) -> str | None:
    """A pinned hash as given by a user -> 64 lower-case hex digits, or None for "any file".

    Accepts upper case, surrounding spaces and a ``sha256:`` prefix; "" means no pin.
    """
    if value is None:
        return None
    v = value.strip().lower()
    v = v.removeprefix("sha256:")
    if not v:
        return None
    if not _SHA256_RE.fullmatch(v):
        raise CheckpointError(f"sha256 pin {value!r} is not a SHA-256 (64 hex digits); get the "
                              f"hash of a file with `sha256sum FILE`")
    return v


def _feed(h: Any, obj: Any) -> None:
    """Feed a payload (dicts, lists, tuples, tensors, plain scalars) into a hash, in a fixed
    order."""
    torch = sys.modules.get("torch")  # a payload holds tensors only where torch is loaded
    if torch is not None and isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"S{type(obj).__name__}:{obj!r}".encode())


def content_digest(payload: dict[str, Any]) -> str:
    """SHA-256 over the format's entries of a payload (weights, config, training state...)."""
    h = hashlib.sha256()
    _feed(h, {k: payload[k] for k in _DIGESTED if k in payload})
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Writing


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a
    kill at any moment leaves either the old file or the complete new one."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, model_state: dict[str, Any], cfg: Config,
                    train_state: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint (current format version); returns its path.

    ``train_state`` must hold only tensors and plain data (see
    ``stemseg_core.training.state``), so that it loads with ``weights_only=True``.
    """
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "class_names": list(cfg.model.class_names),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
    }
    if train_state is not None:
        payload["train_state"] = train_state
    payload["digest"] = content_digest(payload)
    return atomic_torch_save(payload, path)


# ----------------------------------------------------------------------------------------------
# Reading


def safe_torch_load(data: bytes, origin: str | Path, *, allow_pickle: bool = False,
                    map_location: Any = "cpu") -> Any:
    """Unpickle ``torch.save`` bytes without running code (``weights_only=True`` plus the numpy
    number arrays). A file that needs more is refused with :class:`UnsafeCheckpointError`
    naming what it needs, unless ``allow_pickle`` (then it is fully unpickled: trusted files
    only). Other read failures raise :class:`DamagedCheckpointError`. ``origin`` names the file
    in messages."""
    import torch

    try:
        with torch.serialization.safe_globals(_SAFE_NUMPY_GLOBALS):
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        names = _unsafe_globals(data)
        if "weights only load failed" not in str(e).lower() or names == []:
            raise _damaged(origin, e) from None  # a broken pickle, not a foreign type
        if not allow_pickle:
            shown = (f" (it references {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
                     if names else "")
            raise UnsafeCheckpointError(
                f"{origin}: refused: loading it needs full unpickling, which can run arbitrary "
                f"code{shown}. stemseg's own checkpoints hold only tensors "
                f"and plain data. If you trust this file and where it came from, load it anyway "
                f"with --allow-pickle (CLI), the node parameter allow_pickle:=true, or "
                f"allow_pickle=True (Python)") from None
        log.warning("%s: fully unpickling a file that needs more than tensors and plain data "
                    "(allow_pickle is set: the file is trusted)", origin)
    except Exception as e:  # torch raises many types for truncated/garbage files
        raise _damaged(origin, e) from None
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as e:
        raise _damaged(origin, e) from None


def _unsafe_globals(data: bytes) -> list[str] | None:
    """The globals a zip checkpoint references beyond the allowed ones (read from its pickle
    opcodes, nothing is run); None when the file cannot be scanned (legacy format)."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
    except Exception:
        return None
    return [n for n in names if n not in _allowed_names()]


def _allowed_names() -> set[str]:
    return {f"{g.__module__}.{g.__qualname__}" for g in _SAFE_NUMPY_GLOBALS}


def _damaged(origin: str | Path, e: Exception) -> DamagedCheckpointError:
    return DamagedCheckpointError(
        f"{origin}: cannot be read as a checkpoint ({type(e).__name__}: {str(e)[:300]}); the "
        f"file is damaged or truncated - re-copy it or pick another checkpoint")


def check_pin(path: str | Path, actual: str, pin: str | None) -> None:
    """Refuse (:class:`ChecksumMismatchError`) a file whose hash ``actual`` is not the
    normalized ``pin`` (None = any file)."""
    if pin is not None and actual != pin:
        raise ChecksumMismatchError(
            f"{path}: SHA-256 is {actual}, but {pin} was required (--sha256 / "
            f"checkpoint_sha256); refusing a file other than the pinned one. Pin the new hash "
            f"if this file is the one you mean to run")


def load_checkpoint(path: str | Path, overrides: Overrides | None = None, *,
                    allow_pickle: bool = False, sha256: str | None = None,
                    map_location: Any = "cpu") -> tuple[Config, dict[str, Any]]:
    """Read, check and migrate a checkpoint without running code from it.

    Returns (config with ``overrides`` applied, payload in the current format version). The
    payload also carries ``payload["file_sha256"]``, the SHA-256 of the bytes that were read.
    ``sha256``: when given ("" or None = any file), a file with another hash is refused before
    it is unpickled. ``allow_pickle``: accept a file that needs full unpickling (trusted files
    only). Raises :class:`CheckpointError` (or one of its subclasses) naming the file, the
    problem and the fix.
    """
    path = Path(path)
    pin = normalize_sha256(sha256)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()  # hash and unpickle the same bytes
    actual = hashlib.sha256(data).hexdigest()
    check_pin(path, actual, pin)
    payload = safe_torch_load(data, path, allow_pickle=allow_pickle)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a stemseg checkpoint (no '{FORMAT}' marker). Checkpoints are written by "
            f"`stemseg train`; a bare state_dict can be wrapped with stemseg_core.checkpoint."
            f"save_checkpoint(path, state_dict, cfg)")
    payload = migrate(payload, path)
    for key in ("config", "model", "class_names"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    payload[FILE_SHA256_KEY] = actual
    cfg = config_from_dict(without_machine_paths(payload["config"], path), overrides)
    return cfg, payload


#: Settings of the machine a checkpoint was trained on, not of the model: the value stored in a
#: checkpoint is ignored (a checkpoint from elsewhere must not choose where this machine loads
#: built engines from, issue 35); only the caller's overrides set them.
MACHINE_PATHS = (("inference", "engine_cache_dir"),)


def without_machine_paths(config: Any, origin: str | Path) -> Any:
    """``config`` (the checkpoint's dict) with :data:`MACHINE_PATHS` cleared (a copy; the
    payload and its digest stay as read)."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for section, key in MACHINE_PATHS:
        sub = out.get(section)
        if isinstance(sub, dict) and sub.get(key):
            log.info("%s: ignoring the checkpoint's %s.%s=%r (set it with an override, e.g. "
                     "the node's %s parameter)", origin, section, key, str(sub[key])[:200], key)
            out[section] = {**sub, key: ""}
    return out


def migrate(payload: dict[str, Any], origin: str | Path) -> dict[str, Any]:
    """Bring a loaded payload to the current version (checking the digest where there is one)."""
    version = payload.get("version")
    if version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and version > VERSION
        raise CheckpointError(
            f"{origin}: checkpoint format version {version!r} is not supported: this stemseg "
            f"writes version {VERSION} and reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
            + ("; the file was written by a newer stemseg: upgrade stemseg" if newer else ""))
    if version >= 2:
        stored = payload.get("digest")
        if stored != content_digest(payload):
            raise DamagedCheckpointError(
                f"{origin}: contents do not match the digest written with them (stored "
                f"{stored!r}); the file is damaged - re-copy it or pick another checkpoint")
    if version == 1:
        payload = dict(payload)
        if "train_state" in payload:
            payload["train_state"] = migrate_v1_train_state(payload["train_state"])
        payload["version"] = VERSION
        log.info("%s: format version 1 migrated to %d on load", origin, VERSION)
    return payload


def migrate_v1_train_state(ts: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint format 1 kept numpy's RNG state as ``np.random.get_state()`` (a tuple with a
    uint32 array); format 2 keeps the dict of :func:`rng_state`."""
    import torch

    ts = dict(ts)
    rngs = []
    for r in ts.get("rng") or []:
        r = dict(r)
        npst = r.get("numpy")
        if isinstance(npst, tuple):
            name, key, pos, has_gauss, cached = npst[:5]
            r["numpy"] = {"bit_generator": str(name),
                          "key": torch.from_numpy(np.asarray(key).astype(np.int64)),
                          "pos": int(pos), "has_gauss": int(has_gauss),
                          "cached_gaussian": float(cached)}
        rngs.append(r)
    if "rng" in ts:
        ts["rng"] = rngs
    return ts
