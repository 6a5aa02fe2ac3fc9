"""The training loop: one readable loop, every knob from ``cfg.train``.

Per step: forward (autocast on CUDA when ``train.amp``) -> backward -> NaN/Inf guard -> gradient
clipping -> SGD (momentum, Nesterov, weight decay) -> LR schedule. Logs go to ``RUN/losses.csv``
(every step), TensorBoard ``RUN/tb`` and a tqdm bar; checkpoints ``RUN/last.pt`` (+ a few
``RUN/step_<N>.pt``) are written atomically every ``train.checkpoint_every`` steps and at the end.

Exact resume: the data of step s is a pure function of (seed, s, rank) (see ``sampling.py``) and
the checkpoint holds optimizer, scheduler, grad scaler and all RNG states, so stopping after step k
and resuming gives the same per-step losses and final weights as one uninterrupted run.

Under torchrun every rank trains on its own shard through DistributedDataParallel; only rank 0
writes files.
"""
from __future__ import annotations

import csv
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stemseg_core.checkpoint import load_checkpoint, save_checkpoint
from stemseg_core.config import Config, save_config
from stemseg_core.training import distributed as D
from stemseg_core.training.sampling import StepBatchSampler
from stemseg_core.training.schedule import build_scheduler
from stemseg_core.training.state import rng_state, seed_everything, set_rng_state

#: Abort after this many consecutive steps with a non-finite loss or gradient.
MAX_CONSECUTIVE_BAD_STEPS = 5


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why and what to do."""


@dataclass
class TrainResult:
    step: int
    elapsed_s: float
    final_losses: dict[str, float]
    checkpoint: Path | None
    skipped_steps: int
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Small helpers


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights only; none on norm scales/shifts and biases (1-D parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _to_device(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    return [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
             for k, v in t.items()} for t in targets]


def load_init_weights(model: nn.Module, path: str | Path, *, allow_pickle: bool = False,
                      sha256: str | None = None) -> str:
    """Copy matching tensors of a checkpoint into `model` (fine-tuning); returns a summary line.
    The file is read safely (see ``stemseg_core.checkpoint.load_checkpoint``)."""
    _, payload = load_checkpoint(path, allow_pickle=allow_pickle, sha256=sha256)
    src = payload["model"]
    own = model.state_dict()
    loaded, mismatched = {}, []
    for k, v in src.items():
        if k in own and own[k].shape == v.shape:
            loaded[k] = v
        elif k in own:
            mismatched.append(k)
    model.load_state_dict(loaded, strict=False)
    missing = [k for k in own if k not in loaded]
    return (f"init from {path}: {len(loaded)}/{len(own)} tensors loaded, "
            f"{len(mismatched)} shape mismatches skipped, {len(missing)} left at random init")


# ----------------------------------------------------------------------------------------------


class Trainer:
    """Train a STEm-Seg model on one data set; see the module docstring.

    cfg: the full config (``cfg.train`` drives the loop). data_dir: data set root (or a list of
    roots, pooled), read by ``stemseg_core.data.clips.build_dataset`` unless `dataset` (+
    `collate_fn`) is given.
    out_dir: the run directory. resume: continue from ``out_dir/last.pt``. init: checkpoint whose
    weights initialise the model. model_factory: builds the model from cfg (default
    ``stemseg_core.model.build_model``), called after seeding so every run starts identically.
    stop_at: leave the loop after this step as if interrupted (for chunked runs and tests).
    """

    def __init__(self, cfg: Config, out_dir: str | Path,
                 data_dir: str | Path | list[str | Path] | None = None, *,
                 device: str = "cpu", resume: bool = False, init: str | Path | None = None,
                 dataset: Dataset | None = None, collate_fn: Callable | None = None,
                 model_factory: Callable[[Config], nn.Module] | None = None,
                 keep_checkpoints: int = 3, stop_at: int | None = None, progress: bool = True,
                 allow_pickle: bool = False, init_sha256: str | None = None,
                 log: Callable[[str], None] = print):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.keep = keep_checkpoints
        self.stop_at = stop_at
        self.progress = progress
        self.ctx = D.setup_distributed(device)
        self.device = self.ctx.device
        self._log = log
        tc = cfg.train

        payload: dict[str, Any] | None = None
        if resume:
            last = self.out / "last.pt"
            # Every rank decides from the same broadcast answer, so a missing file fails all
            # ranks at once instead of leaving the others waiting in a collective.
            found = D.broadcast_object(last.is_file() if self.ctx.is_main else None)
            if not found:
                raise TrainingError(f"nothing to resume: {last} does not exist; drop --resume "
                                    f"to start a new run in {self.out}")
            payload = D.broadcast_object(load_checkpoint(last, allow_pickle=allow_pickle)[1]
                                         if self.ctx.is_main else None)
            if "train_state" not in payload:
                raise TrainingError(f"{last} has no training state (was it written by "
                                    f"`stemseg train`?); use --init to start from its weights")

        # Same seed on every rank: identical init (DDP also broadcasts rank 0's weights).
        seed_everything(tc.seed)
        if model_factory is None:
            from stemseg_core.model import build_model as model_factory
        self.model = model_factory(cfg).to(self.device)
        if init is not None and payload is None:
            self.info(load_init_weights(self.model, init, allow_pickle=allow_pickle,
                                        sha256=init_sha256))
        if payload is not None:
            self.model.load_state_dict(payload["model"])
        self.model.train()

        if dataset is None:
            if data_dir is None:
                raise TrainingError("no training data: give data_dir (--data)")
            from stemseg_core.data.clips import build_dataset, collate_clips

            dataset = build_dataset(cfg, data_dir, split="train")
            collate_fn = collate_fn or collate_clips
        self.dataset = dataset
        self.collate_fn = collate_fn
        if getattr(dataset, "oversample_summary", ""):
            self.info(dataset.oversample_summary)
        if len(dataset) == 0:
            raise TrainingError(f"the training set in {data_dir} is empty")

        self.optimizer = torch.optim.SGD(param_groups(self.model, tc.weight_decay), lr=tc.lr,
                                         momentum=tc.momentum, nesterov=tc.nesterov)
        self.scheduler = build_scheduler(self.optimizer, tc.max_steps, tc.lr_decay_start,
                                         tc.lr_decay_factor)
        self.use_amp = bool(tc.amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

        self.step = 0
        self.skipped_steps = 0
        self.elapsed_before = 0.0
        if payload is not None:
            ts = payload["train_state"]
            self.step = int(ts["step"])
            self.skipped_steps = int(ts.get("skipped_steps", 0))
            self.elapsed_before = float(ts.get("elapsed_s", 0.0))
            self.optimizer.load_state_dict(ts["optimizer"])
            self.scheduler.load_state_dict(ts["scheduler"])
            # A resumed run may have a new max_steps: the schedule follows the current config.
            fresh = build_scheduler(self.optimizer, tc.max_steps, tc.lr_decay_start,
                                    tc.lr_decay_factor)
            self.scheduler.lr_lambdas = fresh.lr_lambdas
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * fresh.lr_lambdas[0](self.scheduler.last_epoch)
            if ts.get("scaler"):
                self.scaler.load_state_dict(ts["scaler"])
            rngs = ts.get("rng") or []
            if ts.get("world_size", 1) == self.ctx.world_size and len(rngs) > self.ctx.rank:
                set_rng_state(rngs[self.ctx.rank])
            else:
                self.info(f"note: resuming with {self.ctx.world_size} process(es) instead of "
                          f"{ts.get('world_size', 1)}; data order and RNG streams differ")
                seed_everything(tc.seed + self.step + self.ctx.rank)
            self.info(f"resumed {self.out / 'last.pt'} at step {self.step}")

        self.ddp_model: nn.Module = self.model
        if self.ctx.enabled:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)

        self._stop_requested = False
        self.history: list[dict[str, float]] = []
        self.loss_keys: list[str] | None = None  # order of the all-reduced loss vector
        self.csv_keys: list[str] | None = None  # columns of losses.csv

    # -- output ---------------------------------------------------------------------------------

    def info(self, msg: str) -> None:
        if self.ctx.is_main:
            self._log(msg)

    def num_parameters(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return total, trainable

    def summary(self) -> str:
        tc = self.cfg.train
        total, trainable = self.num_parameters()
        m = self.cfg.model
        return "\n".join([
            f"stemseg train -> {self.out}",
            f"  model:   {m.backbone.name}, mixing {m.embedding.mixing}, T={m.clip_length}, "
            f"{total / 1e6:.2f} M parameters ({trainable / 1e6:.2f} M trainable)",
            f"  device:  {self.device}{' (AMP)' if self.use_amp else ''}, "
            f"{self.ctx.world_size} process(es)",
            f"  data:    {len(self.dataset)} clips of {m.clip_length} frames at "
            f"{self.cfg.data.height}x{self.cfg.data.width}",
            f"  steps:   {self.step} -> {tc.max_steps}, batch {tc.batch_size} per process "
            f"({tc.batch_size * self.ctx.world_size} clips/step), lr {tc.lr:g} "
            f"(decay from step {tc.lr_decay_start} to x{tc.lr_decay_factor:g})",
        ])

    def _open_logs(self) -> None:
        self.csv_path = self.out / "losses.csv"
        self.tb = None
        if not self.ctx.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.out / "config.yaml")
        # Drop rows logged after the checkpoint we resumed from (the interrupted tail).
        kept: list[dict[str, str]] = []
        if self.csv_path.is_file() and self.step > 0:
            with self.csv_path.open(newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        if kept:
            self.csv_keys = [k for k in kept[0] if k not in ("step", "lr")]
            with self.csv_path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(kept[0]))
                w.writeheader()
                w.writerows(kept)
        elif self.csv_path.exists():
            self.csv_path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1)
        except Exception as e:  # tensorboard missing or broken: keep training
            self._log(f"note: TensorBoard logging off ({type(e).__name__}: {e})")

    def _write_csv(self, step: int, values: dict[str, float], lr: float) -> None:
        if self.csv_keys is None:
            self.csv_keys = list(values)
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", *self.csv_keys, "lr"])
            w.writerow([step, *(f"{values.get(k, float('nan')):.9g}" for k in self.csv_keys),
                        f"{lr:.9g}"])

    def _log_images(self, step: int, images: torch.Tensor, targets: list[dict[str, Any]]) -> None:
        """GT overlay of the first frame + the predicted seediness map (TensorBoard)."""
        if self.tb is None:
            return
        img = images[0, 0].detach().permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy()
        try:
            from stemseg_core.inference.types import TrackedInstance
            from stemseg_core.visualize import draw_overlay

            names = self.cfg.model.class_names
            masks = targets[0]["masks"][:, 0].cpu().numpy()
            classes = targets[0]["classes"].tolist()
            inst = [TrackedInstance(i + 1, int(c), names[int(c)] if int(c) < len(names) else "?",
                                    1.0, m) for i, (m, c) in enumerate(zip(masks, classes))]
            bgr = draw_overlay(img, inst)
            self.tb.add_image("gt_overlay", np.ascontiguousarray(bgr[..., ::-1]), step,
                              dataformats="HWC")
        except Exception:  # visualize not available or changed: the raw frame still helps
            self.tb.add_image("frame", img, step, dataformats="HWC")
        try:
            self.model.eval()
            with torch.no_grad():
                out = self.model(images[:1].to(self.device))
            s = out["seediness"][0].float()
            while s.ndim > 3 and s.shape[0] == 1:
                s = s[0]
            if s.ndim == 3:
                self.tb.add_image("seediness", s[:1].clamp(0, 1).cpu(), step)
        except Exception as e:
            self.info(f"note: seediness image not logged ({type(e).__name__}: {e})")
        finally:
            self.model.train()

    def _checkpoint(self, final: bool = False) -> Path | None:
        # RNG states of every rank (collective: all ranks must call this).
        rngs = D.all_gather_object(rng_state())
        if not self.ctx.is_main:
            return None
        train_state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else None,
            "rng": rngs,
            "sampler": {"seed": self.cfg.train.seed, "next_step": self.step,
                        "batch_size": self.cfg.train.batch_size,
                        "world_size": self.ctx.world_size},
            "world_size": self.ctx.world_size,
            "skipped_steps": self.skipped_steps,
            "elapsed_s": self.elapsed_before + (time.time() - self._t0),
        }
        path = save_checkpoint(self.out / "last.pt", self.model.state_dict(), self.cfg,
                               train_state)
        if self.keep > 0 and not final:
            save_checkpoint(self.out / f"step_{self.step}.pt", self.model.state_dict(), self.cfg,
                            train_state)
            old = sorted(self.out.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
            for p in old[:-self.keep]:
                p.unlink(missing_ok=True)
        return path

    def _plot(self) -> None:
        if not self.ctx.is_main or not self.csv_path.is_file():
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            with self.csv_path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            if not rows:
                return
            steps = np.array([int(r["step"]) for r in rows])
            keys = [k for k in rows[0] if k not in ("step", "lr")]
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
            fig.savefig(self.out / "loss.png", dpi=100)
            plt.close(fig)
        except Exception as e:
            self._log(f"note: loss.png not written ({type(e).__name__}: {e})")

    # -- the loop -------------------------------------------------------------------------------

    def _request_stop(self, signum, frame) -> None:  # noqa: ARG002
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self.info("\nstop requested: finishing this step and saving last.pt "
                  "(press Ctrl-C again to abort without saving)")

    def train(self) -> TrainResult:
        tc = self.cfg.train
        end = tc.max_steps if self.stop_at is None else min(tc.max_steps, self.stop_at)
        self._t0 = time.time()
        self._open_logs()
        self.info(self.summary())
        if self.step >= end:
            self.info(f"nothing to do: already at step {self.step} (max_steps {tc.max_steps})")
            self._close()
            return TrainResult(self.step, self.elapsed_before, {}, self.out / "last.pt",
                               self.skipped_steps)

        sampler = StepBatchSampler(tc.seed, self.step, end, self.ctx.rank, self.ctx.world_size,
                                   tc.batch_size, len(self.dataset),
                                   getattr(self.dataset, "indexed_with_epoch", False))
        workers = self.cfg.data.num_workers
        loader = DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collate_fn,
                            num_workers=workers, pin_memory=self.device.type == "cuda",
                            # own generator: creating the iterator must not consume global RNG
                            generator=torch.Generator().manual_seed(tc.seed),
                            prefetch_factor=2 if workers > 0 else None)

        old_handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._request_stop)

        bar = None
        if self.progress and self.ctx.is_main:
            from tqdm import tqdm

            bar = tqdm(total=tc.max_steps, initial=self.step, unit="step", dynamic_ncols=True)
        consecutive_bad = 0
        clips_per_step = tc.batch_size * self.ctx.world_size
        speed = None
        last_ckpt: Path | None = None
        stopped_early = False
        t_step = time.time()
        try:
            for images, targets in loader:
                images = images.to(self.device, non_blocking=True)
                targets = _to_device(targets, self.device)
                lr = self.optimizer.param_groups[0]["lr"]

                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                    losses = self.ddp_model(images, targets)
                total = losses["total"]
                # Always backward (keeps DDP's gradient reduction in step across ranks); a bad
                # step is then dropped before the optimizer sees it.
                self.scaler.scale(total.float()).backward()
                self.scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.grad is not None],
                    tc.grad_clip if tc.grad_clip > 0 else float("inf"))
                bad = torch.tensor([0.0 if bool(torch.isfinite(total.detach())) else 1.0],
                                   device=self.device)
                D.all_reduce_(bad, "max")
                if bad.item() > 0 or (not self.use_amp and not math.isfinite(grad_norm.item())):
                    self.skipped_steps += 1
                    consecutive_bad += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.use_amp:
                        self.scaler.update()  # lowers the scale after overflow
                    self.info(f"warning: step {self.step + 1}: non-finite loss/gradient "
                              f"({float(total.detach()):.4g}); step skipped")
                    if consecutive_bad >= MAX_CONSECUTIVE_BAD_STEPS:
                        raise TrainingError(
                            f"{consecutive_bad} steps in a row had a non-finite loss or gradient "
                            f"(last at step {self.step + 1}); training diverged. Lower train.lr "
                            f"(now {tc.lr:g}), check the data, or resume from an earlier "
                            f"step_<N>.pt")
                else:
                    consecutive_bad = 0
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self.step += 1

                # Mean of every loss over ranks (+ the stop flag) in one collective.
                if self.loss_keys is None:
                    self.loss_keys = list(losses)
                keys = self.loss_keys
                vec = torch.stack([losses[k].detach().float().reshape(()) if k in losses
                                   else torch.tensor(float("nan"), device=self.device)
                                   for k in keys]
                                  + [torch.tensor(float(self._stop_requested),
                                                  device=self.device)])
                D.all_reduce_(vec, "sum")
                vec = vec.cpu()
                stop_flag = vec[-1].item() > 0
                values = {k: float(v) / self.ctx.world_size for k, v in zip(keys, vec[:-1])}
                now = time.time()
                dt, t_step = now - t_step, now
                inst = clips_per_step / max(dt, 1e-9)
                speed = inst if speed is None else 0.9 * speed + 0.1 * inst
                self.history.append({"step": self.step, **values, "lr": lr})

                if self.ctx.is_main:
                    self._write_csv(self.step, values, lr)
                    if self.tb is not None and (self.step % tc.log_every == 0
                                                or self.step == end):
                        for k, v in values.items():
                            self.tb.add_scalar(f"loss/{k}", v, self.step)
                        self.tb.add_scalar("train/lr", lr, self.step)
                        self.tb.add_scalar("train/clips_per_s", speed, self.step)
                        self.tb.add_scalar("train/grad_norm", float(grad_norm), self.step)
                        self.tb.add_scalar("train/skipped_steps", self.skipped_steps, self.step)
                    if tc.image_log_every > 0 and self.step % tc.image_log_every == 0:
                        self._log_images(self.step, images, targets)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{values.get('total', float('nan')):.4f}",
                                        clips_s=f"{speed:.2f}", lr=f"{lr:.2e}", refresh=False)
                if self.step % tc.checkpoint_every == 0 or self.step == end or stop_flag:
                    last_ckpt = self._checkpoint(final=self.step == tc.max_steps) or last_ckpt
                if stop_flag:
                    stopped_early = True
                    break
        finally:
            if bar is not None:
                bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
            self._close()
        if self.step < tc.max_steps:
            stopped_early = True
        elapsed = self.elapsed_before + (time.time() - self._t0)
        self._plot()
        tail = self.history[-tc.log_every:]
        final = {k: float(np.mean([h[k] for h in tail])) for k in (tail[0] if tail else {})
                 if k not in ("step", "lr")}
        res = TrainResult(self.step, elapsed, final, last_ckpt, self.skipped_steps,
                          stopped_early, self.history)
        self.info(self.end_summary(res))
        return res

    def end_summary(self, r: TrainResult) -> str:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in r.final_losses.items())
        state = "stopped at" if r.stopped_early else "finished"
        resume = ("\n  continue with the same command plus --resume"
                  if r.stopped_early else "")
        return (f"{state} step {r.step}/{self.cfg.train.max_steps} in {r.elapsed_s / 60:.1f} min "
                f"(total for the run); skipped steps: {r.skipped_steps}\n"
                f"  final losses (mean of last {min(len(r.history), self.cfg.train.log_every)} "
                f"steps): {losses}\n"
                f"  checkpoint: {r.checkpoint}  log: {self.out / 'losses.csv'}{resume}")

    def _close(self) -> None:
        if getattr(self, "tb", None) is not None:
            self.tb.close()
            self.tb = None
