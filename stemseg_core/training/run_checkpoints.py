"""The checkpoints of a run directory: ``RUN/last.pt`` plus the last K ``RUN/step_<N>.pt``.

Each file is written atomically (``stemseg_core.checkpoint``): a run killed at any moment, even
with SIGKILL, leaves only complete checkpoints (and perhaps a stale ``*.tmp``, removed on
resume). Resuming takes ``last.pt``; if it is damaged (truncated, digest mismatch), the newest
intact ``step_<N>.pt`` is used instead, with a warning.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from stemseg_core.checkpoint import (
    DamagedCheckpointError,
    fsync_dir,
    load_checkpoint,
    save_checkpoint,
)
from stemseg_core.config import Config

log = logging.getLogger(__name__)

LAST = "last.pt"
STEP_PREFIX = "step_"


class NoCheckpointError(FileNotFoundError):
    """The run directory has no checkpoint that can be resumed."""


def step_path(out: Path, step: int) -> Path:
    return out / f"{STEP_PREFIX}{step}.pt"


def step_checkpoints(out: Path) -> list[Path]:
    """``step_<N>.pt`` files of a run, oldest first."""
    found = []
    for p in out.glob(f"{STEP_PREFIX}*.pt"):
        n = p.stem[len(STEP_PREFIX):]
        if n.isdigit():
            found.append((int(n), p))
    return [p for _, p in sorted(found)]


def write_checkpoint(out: Path, model_state: dict[str, torch.Tensor], cfg: Config,
                     train_state: dict[str, Any], *, keep: int, periodic: bool) -> Path:
    """Write ``last.pt`` (and, when ``periodic`` and ``keep`` > 0, ``step_<N>.pt``, deleting
    all but the newest ``keep`` of those). Returns the path of last.pt."""
    last = out / LAST
    if not (periodic and keep > 0):
        return save_checkpoint(last, model_state, cfg, train_state)
    step_file = save_checkpoint(step_path(out, int(train_state["step"])), model_state, cfg,
                                train_state)
    _replace_with_link(step_file, last)
    for old in step_checkpoints(out)[:-keep]:
        old.unlink(missing_ok=True)
    return last


def _replace_with_link(src: Path, dst: Path) -> None:
    """Make ``dst`` a second name of the complete file ``src``, atomically (a copy where the
    file system has no hard links). A later atomic rewrite of either name leaves the other."""
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, dst)
    fsync_dir(dst.parent)


def remove_stale_temp_files(out: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a kill interrupted."""
    stale = [p for p in out.glob("*.tmp") if p.name.startswith((LAST, STEP_PREFIX))]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def find_resume_checkpoint(out: Path, *, allow_pickle: bool = False
                           ) -> tuple[Path, Config, dict[str, Any]]:
    """The newest intact checkpoint of run ``out``: ``last.pt``, or a ``step_<N>.pt`` of a
    later step (a kill between writing it and pointing last.pt at it) or, when last.pt is
    damaged, the newest intact ``step_<N>.pt``. Returns (path, config, payload).

    Damaged files are skipped with a warning; any other problem (an unsafe file, an unknown
    version) is raised as it is: a file that is fine but refused must not be silently replaced
    by an older one. Raises :class:`NoCheckpointError` when there is nothing to resume.
    """
    last = out / LAST
    steps = list(reversed(step_checkpoints(out)))  # newest first
    if not last.is_file() and not steps:
        raise NoCheckpointError(f"nothing to resume: {last} does not exist; drop --resume "
                                f"to start a new run in {out}")
    damaged: list[str] = []

    def load(p: Path) -> tuple[Path, Config, dict[str, Any]] | None:
        try:
            cfg, payload = load_checkpoint(p, allow_pickle=allow_pickle)
        except DamagedCheckpointError as e:
            log.warning("skipping a damaged checkpoint: %s", e)
            damaged.append(p.name)
            return None
        if "train_state" not in payload:
            raise NoCheckpointError(f"{p} has no training state (was it written by `stemseg "
                                    f"train`?); use --init to start from its weights")
        return p, cfg, payload

    best = load(last) if last.is_file() else None
    best_step = best[2]["train_state"]["step"] if best else -1
    for p in steps:
        if int(p.stem[len(STEP_PREFIX):]) <= best_step:
            break
        found = load(p)
        if found is not None:
            best = found
            break
    if best is None:
        raise NoCheckpointError(f"nothing to resume in {out}: every checkpoint is damaged "
                                f"({', '.join(damaged)}); start a new run or restore a copy")
    if best[0] != last:
        log.warning("resuming from %s (newer than %s%s)", best[0].name, LAST,
                    ", which is damaged" if LAST in damaged else "")
    return best
