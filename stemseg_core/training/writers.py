"""Metric writers: every loss and the LR per step to ``RUN/losses.csv`` and TensorBoard, and the
loss curve plot ``RUN/loss.png`` at the end. Used by ``hooks.MetricsWriter`` on rank 0."""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Columns of losses.csv besides the losses.
STEP_COLUMN, LR_COLUMN = "step", "lr"


def _complete_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a losses.csv whose every field parses as a number (a kill can cut the last
    line short)."""
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            try:
                int(r[STEP_COLUMN])
                [float(v) for v in r.values()]
            except (TypeError, ValueError, KeyError):
                continue
            rows.append(r)
    return rows


class CSVWriter:
    """Appends one row per step: ``step, <loss names...>, lr``. The columns are fixed by the
    first row written (or by the rows kept from a resumed run)."""

    def __init__(self, path: Path, resume_step: int = 0):
        self.path = path
        self.keys: list[str] | None = None
        kept = (_complete_rows(path) if path.is_file() and resume_step > 0 else [])
        kept = [r for r in kept if int(r[STEP_COLUMN]) <= resume_step]
        if kept:  # drop the rows logged after the checkpoint we resume from
            self.keys = [k for k in kept[0] if k not in (STEP_COLUMN, LR_COLUMN)]
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(kept[0]))
                w.writeheader()
                w.writerows(kept)
            os.replace(tmp, path)
        elif path.exists():
            path.unlink()

    def write(self, step: int, values: dict[str, float], lr: float) -> None:
        if self.keys is None:
            self.keys = list(values)
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow([STEP_COLUMN, *self.keys, LR_COLUMN])
            w.writerow([step, *(f"{values.get(k, float('nan')):.9g}" for k in self.keys),
                        f"{lr:.9g}"])


class TensorBoardWriter:
    """Scalars (and images) under ``RUN/tb``; silently off when TensorBoard is not installed."""

    def __init__(self, folder: Path, resume_step: int = 0):
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(folder), purge_step=resume_step + 1)
        except Exception as e:  # tensorboard missing or broken: keep training
            log.warning("TensorBoard logging off (%s: %s)", type(e).__name__, e)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """Every loss column of losses.csv (moving mean over ~1/50 of the run, log scale)."""
    if not csv_path.is_file():
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = _complete_rows(csv_path)
        if not rows:
            return
        steps = np.array([int(r[STEP_COLUMN]) for r in rows])
        keys = [k for k in rows[0] if k not in (STEP_COLUMN, LR_COLUMN)]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        win = max(1, len(rows) // 50)
        for k in keys:
            y = np.array([float(r[k]) for r in rows])
            if win > 1:
                y = np.convolve(y, np.ones(win) / win, mode="valid")
            ax.plot(steps[len(steps) - len(y):], y, label=k)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"loss (moving mean of {win})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(png_path, dpi=100)
        plt.close(fig)
    except Exception as e:
        log.warning("loss.png not written (%s: %s)", type(e).__name__, e)

