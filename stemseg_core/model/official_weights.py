"""Import of the authors' released STEm-Seg checkpoints (github sabarim/STEm-Seg) onto
``model.architecture: official``.

Their files (``kitti_mots.pth``, ``davis.pth``, ``youtube_vis.pth``) are dicts saved by their
trainer with legacy (non-zip) ``torch.save`` from CUDA: the weights under ``model``, beside
``optimizer``, ``lr_scheduler``, ``logger``, ``iterations`` (and ``amp``), which are ignored.
They are read with ``weights_only=True`` (no code runs) unless ``allow_pickle``.

Key mapping (all others are identical, our official layout uses the authors' names):

============================================  =========================
theirs                                        ours
============================================  =========================
``embedding_loss_criterion.free_dim_bandwidths``  ``mixing.free_dim_bandwidths``
``module.<key>`` (a DataParallel prefix)       ``<key>``
============================================  =========================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from stemseg_core.checkpoint import CheckpointError
from stemseg_core.config import Config, load_config

#: Dataset name -> our config reproducing the authors' network and inference settings.
DATASETS = {"kitti_mots": "official_kitti_mots.yaml", "davis": "official_davis.yaml",
            "youtube_vis": "official_youtube_vis.yaml"}
#: Their key -> ours, where the two differ.
KEY_MAP = {"embedding_loss_criterion.free_dim_bandwidths": "mixing.free_dim_bandwidths"}
#: Entries of their checkpoint dict besides ``model`` (training state; not imported).
TRAINING_ENTRIES = ("optimizer", "lr_scheduler", "logger", "iterations", "amp")
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "model"


class OfficialWeightsError(CheckpointError):
    """The file is not one of the authors' checkpoints, or does not fit the dataset's network."""


@dataclass
class ImportReport:
    """What an import placed and what it could not."""

    dataset: str
    n_keys: int = 0
    n_values: int = 0
    renamed: dict[str, str] = field(default_factory=dict)
    ignored_entries: list[str] = field(default_factory=list)


def official_config(dataset: str, overrides: list[str] | None = None) -> Config:
    """Our config of the authors' ``dataset`` model (config/model/official_<dataset>.yaml)."""
    if dataset not in DATASETS:
        raise OfficialWeightsError(f"--dataset '{dataset}' is not one of {', '.join(DATASETS)}")
    path = CONFIG_DIR / DATASETS[dataset]
    if not path.is_file():
        raise OfficialWeightsError(f"{path} is missing (it ships with the stemseg sources: run "
                                   f"from a checkout of the repository)")
    return load_config(path, overrides)


def read_official_state(path: str | Path, *, allow_pickle: bool = False
                        ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(their ``model`` state dict on the CPU, the other top-level entries' names)."""
    from stemseg_core.checkpoint import FORMAT, safe_torch_load

    p = Path(path)
    if not p.is_file():
        raise OfficialWeightsError(f"--checkpoint: file not found: {p}")
    payload = safe_torch_load(p.read_bytes(), p, allow_pickle=allow_pickle, map_location="cpu")
    if not isinstance(payload, dict):
        raise OfficialWeightsError(f"{p}: holds a {type(payload).__name__}, not the dict the "
                                   f"authors' trainer saves ({{'model': ..., 'optimizer': ...}})")
    if payload.get("format") == FORMAT:
        raise OfficialWeightsError(f"{p}: is already a stemseg checkpoint; use it directly "
                                   f"(stemseg infer --checkpoint {p})")
    if "model" not in payload:
        keys = sorted(map(str, payload))
        if keys and all(k.startswith(("body.", "fpn.")) for k in keys):
            raise OfficialWeightsError(
                f"{p}: is the authors' backbone-only file (keys body.*, fpn.*: their Mask R-CNN "
                f"initialisation), not a trained STEm-Seg model; set "
                f"model.backbone.weights={p} with model.backbone.name=msra_resnet101_fpn to "
                f"train from it")
        raise OfficialWeightsError(f"{p}: no 'model' entry (found {keys[:8]}); the authors' "
                                   f"checkpoints hold the weights under 'model'")
    state = payload["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise OfficialWeightsError(f"{p}: 'model' is not a state dict of tensors")
    others = [str(k) for k in payload if k != "model"]
    return dict(state), others


def guess_dataset(state: dict[str, torch.Tensor]) -> str | None:
    """Which released model a state dict looks like, from its heads (None = none of them)."""
    if "seediness_head.conv_out.weight" in state:
        return "davis"
    out = state.get("semseg_head.conv_out.weight")
    if out is not None:
        return {4: "kitti_mots", 42: "youtube_vis"}.get(int(out.shape[0]))
    return None


def map_state(theirs: dict[str, torch.Tensor], own: dict[str, torch.Tensor], dataset: str
              ) -> tuple[dict[str, torch.Tensor], ImportReport]:
    """Their state dict -> ours (keys of ``own``). Raises OfficialWeightsError listing every key
    it could not place, every key left without a value and every shape mismatch."""
    report = ImportReport(dataset)
    mapped: dict[str, torch.Tensor] = {}
    unplaced = []
    for key, value in theirs.items():
        ours = key[len("module."):] if key.startswith("module.") else key
        ours = KEY_MAP.get(ours, ours)
        if ours != key:
            report.renamed[key] = ours
        if ours not in own:
            unplaced.append(key)
            continue
        mapped[ours] = value
    missing = [k for k in own if k not in mapped]
    shapes = [f"{k} {tuple(v.shape)} (ours {tuple(own[k].shape)})" for k, v in mapped.items()
              if tuple(v.shape) != tuple(own[k].shape)]
    if unplaced or missing or shapes:
        guess = guess_dataset(theirs)
        hint = (f" The file looks like the authors' '{guess}' model: use --dataset {guess}."
                if guess and guess != dataset else "")
        raise OfficialWeightsError(
            f"the file does not fit the authors' '{dataset}' network.{hint}\n"
            + _listing("keys it could not place", unplaced)
            + _listing("keys of the network the file lacks", missing)
            + _listing("shape mismatches", shapes))
    state = {k: v.detach().to(dtype=own[k].dtype).contiguous() for k, v in mapped.items()}
    report.n_keys = len(state)
    report.n_values = sum(v.numel() for v in state.values())
    return state, report


def _listing(title: str, items: list[str]) -> str:
    return f"  {title}: {len(items)}" + "".join(f"\n    {x}" for x in items) + "\n"


def import_official(path: str | Path, dataset: str, *, allow_pickle: bool = False,
                    overrides: list[str] | None = None
                    ) -> tuple[Config, dict[str, torch.Tensor], ImportReport]:
    """Read the authors' checkpoint ``path`` for ``dataset``; returns (our config, our state
    dict, report). The state dict loads strictly into ``build_model(config)``."""
    from stemseg_core.model import build_model

    cfg = official_config(dataset, overrides)
    theirs, others = read_official_state(path, allow_pickle=allow_pickle)
    model = build_model(cfg)
    state, report = map_state(theirs, model.state_dict(), dataset)
    model.load_state_dict(state, strict=True)
    report.ignored_entries = others
    return cfg, state, report
