"""Hooks around the training loop (as in detectron2): the loop only steps; writing logs,
checkpoints, images, the progress bar, evaluation and signal handling happen here.

A hook has three verbs, each given the :class:`~stemseg_core.training.trainer.Trainer`:
``before_train`` (after the run directory is ready), ``after_step`` (with the step's
:class:`StepInfo`) and ``after_train`` (always, also after an error). Hooks run on every rank in
the order given; those that write files do it on rank 0 only, but collective calls (the
checkpoint's RNG gather) happen on all ranks.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stemseg_core.training.writers import CSVWriter, TensorBoardWriter, plot_losses

if TYPE_CHECKING:
    from stemseg_core.training.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass
class StepInfo:
    """What one optimisation step produced (losses are means over ranks)."""

    step: int  # steps done, counting this one
    end: int  # the step this call of train() stops after
    losses: dict[str, float]
    lr: float  # the LR this step used
    grad_norm: float
    clips_per_s: float  # moving average
    stop: bool  # some rank asked to stop after this step
    images: torch.Tensor  # (B, T, 3, H, W), the step's batch
    targets: list[dict[str, Any]]


class HookBase:
    def before_train(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        pass

    def after_train(self, trainer: Trainer) -> None:
        pass


class StopOnSignal(HookBase):
    """SIGINT/SIGTERM: finish this step, checkpoint, stop. A second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self._old: dict[int, Any] = {}
        self._trainer: Trainer | None = None

    def before_train(self, trainer: Trainer) -> None:
        self._trainer = trainer
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self._trainer.stop_requested:
            raise KeyboardInterrupt
        self._trainer.stop_requested = True
        self._trainer.info("stop requested: finishing this step and saving last.pt "
                           "(press Ctrl-C again to abort without saving)")

    def after_train(self, trainer: Trainer) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)
        self._old.clear()


class MetricsWriter(HookBase):
    """Every step to ``RUN/losses.csv``; TensorBoard scalars every ``period`` steps (and the
    last); ``RUN/loss.png`` at the end. Rank 0 only."""

    def __init__(self, period: int):
        self.period = period
        self.csv: CSVWriter | None = None
        self.tb: TensorBoardWriter | None = None

    def before_train(self, trainer: Trainer) -> None:
        if trainer.ctx.is_main:
            self.csv = CSVWriter(trainer.out / "losses.csv", trainer.step)
            self.tb = TensorBoardWriter(trainer.out / "tb", trainer.step)

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        if self.csv is None:
            return
        self.csv.write(info.step, info.losses, info.lr)
        if info.step % self.period == 0 or info.step == info.end:
            self.tb.scalars(info.step, {
                **{f"loss/{k}": v for k, v in info.losses.items()}, "train/lr": info.lr,
                "train/clips_per_s": info.clips_per_s, "train/grad_norm": info.grad_norm,
                "train/skipped_steps": trainer.skipped_steps})

    def after_train(self, trainer: Trainer) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.csv is not None:
            plot_losses(self.csv.path, trainer.out / "loss.png")


class ImageLogger(HookBase):
    """Every ``period`` steps: the ground truth drawn on the batch's first frame and the
    predicted seediness map, to the TensorBoard of ``metrics``. Rank 0 only."""

    def __init__(self, period: int, metrics: MetricsWriter):
        self.period = period
        self.metrics = metrics

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        tbw = self.metrics.tb
        if tbw is None or tbw.tb is None or info.step % self.period:
            return
        tb, step = tbw.tb, info.step
        img = info.images[0, 0].detach().permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy()
        try:
            from stemseg_core.inference.types import TrackedInstance
            from stemseg_core.visualize import draw_overlay

            names = trainer.cfg.model.class_names
            masks = info.targets[0]["masks"][:, 0].cpu().numpy()
            classes = [int(c) for c in info.targets[0]["classes"].tolist()]
            inst = [TrackedInstance(i + 1, c, names[c] if c < len(names) else "?", 1.0, m)
                    for i, (m, c) in enumerate(zip(masks, classes))]
            bgr = draw_overlay(img, inst)
            tb.add_image("gt_overlay", np.ascontiguousarray(bgr[..., ::-1]), step,
                         dataformats="HWC")
        except Exception:  # visualize not available or changed: the raw frame still helps
            tb.add_image("frame", img, step, dataformats="HWC")
        model = trainer.model
        try:
            model.eval()
            with torch.no_grad():
                out = model(info.images[:1].to(trainer.device))
            s = out["seediness"][0].float()
            while s.ndim > 3 and s.shape[0] == 1:
                s = s[0]
            if s.ndim == 3:
                tb.add_image("seediness", s[:1].clamp(0, 1).cpu(), step)
        except Exception as e:
            log.warning("seediness image not logged (%s: %s)", type(e).__name__, e)
        finally:
            model.train()


class ProgressBar(HookBase):
    """A tqdm bar with the loss, speed and LR (rank 0)."""

    def __init__(self) -> None:
        self.bar = None

    def before_train(self, trainer: Trainer) -> None:
        if trainer.ctx.is_main:
            from tqdm import tqdm

            self.bar = tqdm(total=trainer.cfg.train.max_steps, initial=trainer.step,
                            unit="step", dynamic_ncols=True)

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{info.losses.get('total', float('nan')):.4f}",
                                 clips_s=f"{info.clips_per_s:.2f}", lr=f"{info.lr:.2e}",
                                 refresh=False)

    def after_train(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PeriodicCheckpointer(HookBase):
    """``last.pt`` every ``period`` steps, at the end of the call and when a stop is requested;
    with ``keep`` > 0 also ``step_<N>.pt`` (the newest ``keep`` kept) except at the final
    step."""

    def __init__(self, period: int, keep: int):
        self.period = period
        self.keep = keep

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        if info.step % self.period == 0 or info.step == info.end or info.stop:
            final = info.step == trainer.cfg.train.max_steps
            path = trainer.save_checkpoint(keep=0 if final else self.keep)
            trainer.last_checkpoint = path or trainer.last_checkpoint


class EvalHook(HookBase):
    """Run ``evaluate(trainer) -> {name: value}`` (model in eval mode, no gradients) every
    ``period`` steps and after the last step of the call; the values are logged, written to
    TensorBoard under ``eval/`` (when ``metrics`` is given) and kept in ``self.results`` as
    (step, values)."""

    def __init__(self, period: int, evaluate: Callable[[Trainer], dict[str, float]],
                 metrics: MetricsWriter | None = None):
        self.period = period
        self.evaluate = evaluate
        self.metrics = metrics
        self.results: list[tuple[int, dict[str, float]]] = []

    def _run(self, trainer: Trainer, step: int) -> None:
        model = trainer.model
        model.eval()
        try:
            with torch.no_grad():
                values = {k: float(v) for k, v in self.evaluate(trainer).items()}
        finally:
            model.train()
        self.results.append((step, values))
        trainer.info(f"eval at step {step}: " + ", ".join(f"{k} {v:.4g}"
                                                          for k, v in values.items()))
        if self.metrics is not None and self.metrics.tb is not None:
            self.metrics.tb.scalars(step, {f"eval/{k}": v for k, v in values.items()})

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        if info.step % self.period == 0 or info.step == info.end or info.stop:
            self._run(trainer, info.step)

