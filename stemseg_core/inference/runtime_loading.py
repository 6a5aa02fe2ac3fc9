"""Loading a streaming tracker from a checkpoint, with or without torch.

A backend that runs exported graphs (openvino, onnxruntime: ``Backend.needs_model`` False)
needs no torch model: the tracker gets a :class:`NetworkSource` built from the checkpoint
index (backends/checkpoint_index.py, keyed by the file's SHA-256) and its backend loads the
graphs from the engine cache. Torch is then never imported in this process:

- index present: config from it (plus the overrides), graphs from the cache;
- a graph missing and torch installed: one child process (graph_build.py) loads
  the checkpoint with torch, exports every graph of that input size (clip lengths 1..T) into
  the cache and exits, so this process never maps libtorch;
- index absent and torch installed: a child process writes it (the same command);
- torch not installed: an error naming the `stemseg export` command that builds them.

Every other backend (torch, inductor, tensorrt), ``load_model=True``, or a process that has
imported torch already loads the checkpoint with torch here (``load_with_torch``), which also
writes the index for the graph backends.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from stemseg_core.backends.artifact_key import weights_hash
from stemseg_core.backends.base import ArtifactMissing, BackendUnavailable, resolve_auto
from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.backends.checkpoint_index import IndexEntry, read_index, write_index
from stemseg_core.backends.network import NetworkSource
from stemseg_core.checkpoint import (
    CheckpointError,
    check_pin,
    file_sha256,
    normalize_sha256,
    without_machine_paths,
)
from stemseg_core.config import Config, config_from_dict, resolve_device
from stemseg_core.config.loading import Overrides, apply_overrides
from stemseg_core.registry import BACKENDS

log = logging.getLogger(__name__)

#: What the child process runs (``python -m``).
CHILD_MODULE = "stemseg_core.inference.graph_build"


def torch_installed() -> bool:
    """Whether torch can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a finder that refuses it
        return False


def _requested(overrides: Overrides | None) -> dict[str, Any]:
    """The inference section the overrides set (backend, engine_cache_dir...)."""
    data: dict[str, Any] = {}
    apply_overrides(data, overrides)
    section = data.get("inference")
    return section if isinstance(section, dict) else {}


def _backend_name(cfg: Config, device: str) -> str:
    name = cfg.inference.backend
    return resolve_auto(device, cfg.inference.precision) if name == "auto" else name


def _runs_graphs(name: str) -> bool:
    """Whether backend ``name`` runs exported graphs (no torch model needed)."""
    return name in BACKENDS and not BACKENDS.get(name).needs_model


def load_tracker(cls: type, path: str | Path, device: str = "auto",
                 overrides: Overrides | None = None, *, allow_pickle: bool = False,
                 sha256: str | None = None, load_model: bool | None = None) -> Any:
    """``cls`` (StreamingTracker) for the checkpoint at ``path``; see the module doc.
    ``load_model``: True = always load the torch model here, None = only where the backend
    needs it or where this process has imported torch already (nothing to save then)."""
    if load_model is None and "torch" in sys.modules:
        load_model = True  # torch is mapped already: nothing to save, load the model here
    if load_model is not True:
        tracker = _from_index(cls, Path(path), device, overrides, allow_pickle, sha256)
        if tracker is not None:
            return tracker
    return load_with_torch(cls, path, device, overrides, allow_pickle=allow_pickle,
                           sha256=sha256)


def _from_index(cls: type, path: Path, device: str, overrides: Overrides | None,
                allow_pickle: bool, sha256: str | None) -> Any:
    """The tracker on a graph backend from the index, or None where torch must load it."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    sha = file_sha256(path)
    check_pin(path, sha, normalize_sha256(sha256))
    wanted = _requested(overrides)
    cache = ArtifactCache(wanted.get("engine_cache_dir") or None)
    entry = read_index(cache, sha)
    have_torch = torch_installed()
    if entry is None:
        if have_torch and not _runs_graphs(str(wanted.get("backend", ""))):
            return None  # the backend is not known to run graphs: load the model here
        if not have_torch:
            raise ArtifactMissing(
                f"{path}: the engine cache {cache.root} has no index for this checkpoint "
                f"(sha256 {sha[:16]}...), and torch is not installed here to read it. On a "
                f"machine with torch and this stemseg run `stemseg export --checkpoint {path} "
                f"--format openvino --height H --width W --engine-cache-dir DIR` (or --format "
                f"onnxruntime; H x W the model input size), then copy DIR here and pass it as "
                f"inference.engine_cache_dir (node parameter engine_cache_dir)")
        _child(path, overrides, allow_pickle, sha256, cache.root)
        entry = read_index(cache, sha)
        if entry is None:
            raise ArtifactMissing(f"{path}: the process that loaded it with torch wrote no "
                                  f"index into {cache.root} (see its log above)")
    cfg = config_from_dict(entry.config, overrides, model_parts=False)
    dev = resolve_device(cfg.inference.device if device == "auto" else device)
    name = _backend_name(cfg, dev)
    if not _runs_graphs(name):
        if have_torch:
            return None
        raise BackendUnavailable(f"backend '{name}' runs the torch model, and torch is not "
                                 f"installed; use inference.backend openvino or onnxruntime")

    def build_missing(backend: Any, frame_shape: tuple[int, int, int]) -> None:
        if backend.precision == "int8":  # quantized graphs need calibration data
            raise ArtifactMissing(
                f"{backend.name} int8: no quantized graphs for model input {frame_shape[1]}x"
                f"{frame_shape[2]} in {backend.cache.root}; build them with `stemseg export "
                f"--checkpoint {path} --format openvino --precision int8 --calibration DATA "
                f"--engine-cache-dir {backend.cache.root}`")
        _child(path, overrides, allow_pickle, sha256, backend.cache.root,
               build=(backend.name, backend.precision, frame_shape))

    source = NetworkSource(cfg, entry.weights, entry.torch, None, sha, str(path),
                           build_missing if have_torch else None)
    tracker = cls(source, cfg, device=dev)
    tracker.weights_sha256 = sha
    log.info("%s: %s %s from the engine cache %s (no torch model loaded)", path, name,
             cfg.inference.precision, cache.root)
    return tracker


def _child(path: Path, overrides: Overrides | None, allow_pickle: bool, sha256: str | None,
           cache_root: Path, build: tuple[str, str, tuple[int, ...]] | None = None) -> None:
    """Run this module in a child process: load the checkpoint with torch, write the index
    (and with ``build``: backend, precision, frame shape, every graph of that shape)."""
    if isinstance(overrides, dict) or hasattr(overrides, "items"):
        over: Any = dict(overrides)  # type: ignore[arg-type]
    else:
        over = list(overrides or [])
    cmd = [sys.executable, "-m", CHILD_MODULE, "--checkpoint", str(path), "--engine-cache-dir",
           str(cache_root), "--overrides-json", json.dumps(over, default=str)]
    if allow_pickle:
        cmd.append("--allow-pickle")
    if sha256:
        cmd += ["--sha256", sha256]
    if build is not None:
        name, precision, shape = build
        cmd += ["--backend", name, "--precision", precision,
                "--shape", "x".join(str(int(s)) for s in shape)]
    log.info("loading %s with torch in a child process to %s", path,
             f"build the {build[0]} graphs for {build[2]}" if build else "index it")
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise ArtifactMissing(f"{path}: the child process that loads it with torch failed "
                              f"(exit {done.returncode}; its log is above): {' '.join(cmd)}")


def load_with_torch(cls: type, path: str | Path, device: str = "auto",
                    overrides: Overrides | None = None, *, allow_pickle: bool = False,
                    sha256: str | None = None) -> Any:
    """``cls`` with the torch model of the checkpoint (the classic path); writes the index
    where the backend runs exported graphs."""
    from stemseg_core.checkpoint import load_checkpoint
    from stemseg_core.model import build_model

    cfg, payload = load_checkpoint(path, overrides, allow_pickle=allow_pickle, sha256=sha256)
    model = build_model(cfg)
    state = payload["model"]
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return f"{len(items)} (" + ", ".join(items[:4]) + (", ...)" if len(items) > 4
                                                               else ")")
        raise CheckpointError(
            f"{path}: the weights do not match the model its config describes (were model.* "
            f"settings overridden? overrides={overrides or []}): missing keys {show(missing)}"
            f"; unexpected keys {show(unexpected)}; shape mismatches {show(shapes)}")
    model.load_state_dict(state, strict=True)
    tracker = cls(model, cfg, device=device)
    tracker.weights_sha256 = payload["file_sha256"]
    _index(path, cfg, payload, model, str(tracker.device))
    return tracker


def _index(path: str | Path, cfg: Config, payload: dict, model: Any, device: str) -> None:
    """Write the checkpoint index where the tracker's backend runs exported graphs."""
    try:
        name = _backend_name(cfg, device)
    except BackendUnavailable:
        return
    if not _runs_graphs(name):
        return
    import torch

    entry = IndexEntry(without_machine_paths(payload["config"], path), weights_hash(model),
                       torch.__version__)
    try:
        write_index(ArtifactCache(cfg.inference.engine_cache_dir or None),
                    payload["file_sha256"], entry)
    except OSError as e:  # the tracker works without it; a runtime without torch will not
        log.warning("%s: cannot write the checkpoint index (%s)", path, e)
