"""The training loop: a short loop around :meth:`Trainer.run_step`, with everything else in hooks.

Per step: forward (autocast on CUDA when ``train.amp``) -> backward -> NaN/Inf guard -> gradient
clipping -> SGD (momentum, Nesterov, weight decay) -> LR schedule. The default hooks
(``hooks.py``) write ``RUN/losses.csv`` (every step), TensorBoard ``RUN/tb`` and ``RUN/loss.png``,
draw a tqdm bar, save ``RUN/last.pt`` (+ a few ``RUN/step_<N>.pt``) every
``train.checkpoint_every`` steps and at the end (``checkpointing.py``: atomic, resumable after
SIGKILL), and turn SIGINT/SIGTERM into "checkpoint and stop". Pass ``hooks=`` to replace them or
``trainer.register_hooks([...])`` to add some (an ``EvalHook``, say).

Exact resume: the data of step s is a pure function of (seed, s, rank) (see ``sampling.py``) and
the checkpoint holds optimizer, scheduler, grad scaler and all RNG states, so stopping after step k
and resuming gives the same per-step losses and final weights as one uninterrupted run.

Under torchrun every rank trains on its own shard through DistributedDataParallel; only rank 0
writes files. Messages go to the ``logging`` logger of this module.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stemseg_core.checkpoint import load_checkpoint
from stemseg_core.config import Config, save_config
from stemseg_core.training import distributed as D
from stemseg_core.training.errors import TrainingError
from stemseg_core.training.hooks import (
    HookBase,
    ImageLogger,
    MetricsWriter,
    PeriodicCheckpointer,
    ProgressBar,
    StepInfo,
    StopOnSignal,
)
from stemseg_core.training.run_checkpoints import (
    LAST,
    NoCheckpointError,
    find_resume_checkpoint,
    remove_stale_temp_files,
    write_checkpoint,
)
from stemseg_core.training.sampling import StepBatchSampler
from stemseg_core.training.schedule import build_scheduler
from stemseg_core.training.state import rng_state, seed_everything, set_rng_state
from stemseg_core.training.teacher import Teacher

log = logging.getLogger(__name__)

#: Abort after this many consecutive steps with a non-finite loss or gradient.
MAX_CONSECUTIVE_BAD_STEPS = 5


@dataclass
class TrainResult:
    step: int
    elapsed_s: float
    final_losses: dict[str, float]
    checkpoint: Path | None
    skipped_steps: int
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


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


class Trainer:
    """Train a STEm-Seg model on one data set; see the module docstring.

    cfg: the full config (``cfg.train`` drives the loop). data_dir: data set root (or a list of
    roots, pooled), read by ``stemseg_core.data.clips.build_dataset`` unless `dataset` (+
    `collate_fn`) is given.
    out_dir: the run directory. resume: continue from ``out_dir/last.pt`` (or the newest intact
    ``step_<N>.pt`` if last.pt is damaged). init: checkpoint whose weights initialise the model
    (pinned by `init_sha256` when given). allow_pickle: accept checkpoints that need full
    unpickling (trusted files only). model_factory: builds the model from cfg (default
    ``stemseg_core.model.build_model``), called after seeding so every run starts identically.
    stop_at: leave the loop after this step as if interrupted (for chunked runs and tests).
    hooks: replace the default hooks (see :meth:`default_hooks`).
    """

    def __init__(self, cfg: Config, out_dir: str | Path,
                 data_dir: str | Path | list[str | Path] | None = None, *,
                 device: str = "cpu", resume: bool = False, init: str | Path | None = None,
                 dataset: Dataset | None = None, collate_fn: Callable | None = None,
                 model_factory: Callable[[Config], nn.Module] | None = None,
                 keep_checkpoints: int = 3, stop_at: int | None = None, progress: bool = True,
                 allow_pickle: bool = False, init_sha256: str | None = None,
                 hooks: list[HookBase] | None = None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.keep = keep_checkpoints
        self.stop_at = stop_at
        self.progress = progress
        self.ctx = D.setup_distributed(device)
        self.device = self.ctx.device
        tc = cfg.train
        self.resumed_from: Path | None = None

        payload = self._resume_payload(allow_pickle) if resume else None

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
        self.teacher = (Teacher(tc.teacher, cfg, self.device, allow_pickle=allow_pickle)
                        if tc.teacher else None)

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
            self._restore(payload["train_state"])

        self.ddp_model: nn.Module = self.model
        if self.ctx.enabled:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)

        self.stop_requested = False
        self.history: list[dict[str, float]] = []
        self.loss_keys: list[str] | None = None  # order of the all-reduced loss vector
        self.last_checkpoint: Path | None = None
        self._consecutive_bad = 0
        self._speed: float | None = None
        self.hooks: list[HookBase] = list(hooks) if hooks is not None else self.default_hooks()

    # -- setup ----------------------------------------------------------------------------------

    def _resume_payload(self, allow_pickle: bool) -> dict[str, Any]:
        """Rank 0 finds the checkpoint to resume; every rank gets it, or the same error."""
        found: tuple[str | None, Any] = (None, None)
        if self.ctx.is_main:
            try:
                path, _, payload = find_resume_checkpoint(self.out, allow_pickle=allow_pickle)
                found = (None, (path, payload))
            except NoCheckpointError as e:
                found = (str(e), None)
        error, value = D.broadcast_object(found)
        if error:
            raise TrainingError(error)
        self.resumed_from = Path(value[0])
        return value[1]

    def _restore(self, ts: dict[str, Any]) -> None:
        tc = self.cfg.train
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
        self.info(f"resumed {self.resumed_from} at step {self.step}")

    def default_hooks(self) -> list[HookBase]:
        """Signals, metrics (CSV/TensorBoard/plot), images, progress bar, checkpoints."""
        tc = self.cfg.train
        metrics = MetricsWriter(tc.log_every)
        hooks: list[HookBase] = [StopOnSignal(), metrics]
        if tc.image_log_every > 0:
            hooks.append(ImageLogger(tc.image_log_every, metrics))
        if self.progress:
            hooks.append(ProgressBar())
        hooks.append(PeriodicCheckpointer(tc.checkpoint_every, self.keep))
        return hooks

    def register_hooks(self, hooks: list[HookBase]) -> None:
        """Add hooks after the present ones (before the checkpointer: it stays last)."""
        at = next((i for i, h in enumerate(self.hooks) if isinstance(h, PeriodicCheckpointer)),
                  len(self.hooks))
        self.hooks[at:at] = hooks

    # -- output ---------------------------------------------------------------------------------

    def info(self, msg: str) -> None:
        if self.ctx.is_main:
            log.info(msg)

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

    def save_checkpoint(self, keep: int | None = None) -> Path | None:
        """Write last.pt (+ step_<N>.pt, see ``checkpointing.write_checkpoint``) on rank 0.
        Collective: every rank must call it (RNG states are gathered). Returns last.pt's path
        on rank 0, None elsewhere."""
        rngs = D.all_gather_object(rng_state())
        if not self.ctx.is_main:
            return None
        keep = self.keep if keep is None else keep
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
        return write_checkpoint(self.out, self.model.state_dict(), self.cfg, train_state,
                                keep=keep, periodic=keep > 0)

    # -- the loop -------------------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for p in remove_stale_temp_files(self.out):
                self.info(f"removed {p.name} (a checkpoint write cut short by a kill)")
            save_config(self.cfg, self.out / "config.yaml")

    def _loader(self, end: int) -> DataLoader:
        tc = self.cfg.train
        sampler = StepBatchSampler(tc.seed, self.step, end, self.ctx.rank, self.ctx.world_size,
                                   tc.batch_size, len(self.dataset),
                                   getattr(self.dataset, "indexed_with_epoch", False))
        workers = self.cfg.data.num_workers
        return DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collate_fn,
                          num_workers=workers, pin_memory=self.device.type == "cuda",
                          # own generator: creating the iterator must not consume global RNG
                          generator=torch.Generator().manual_seed(tc.seed),
                          prefetch_factor=2 if workers > 0 else None)

    def train(self) -> TrainResult:
        tc = self.cfg.train
        end = tc.max_steps if self.stop_at is None else min(tc.max_steps, self.stop_at)
        self._t0 = self._t_step = time.time()
        self._prepare_run_dir()
        self.info(self.summary())
        if self.step >= end:
            self.info(f"nothing to do: already at step {self.step} (max_steps {tc.max_steps})")
            return TrainResult(self.step, self.elapsed_before, {}, self.out / LAST,
                               self.skipped_steps)
        loader = self._loader(end)
        stopped = False
        for h in self.hooks:
            h.before_train(self)
        try:
            for images, targets in loader:
                info = self.run_step(images, targets, end)
                for h in self.hooks:
                    h.after_step(self, info)
                if info.stop:
                    stopped = True
                    break
        finally:
            for h in reversed(self.hooks):
                h.after_train(self)
        return self._result(stopped or self.step < tc.max_steps)

    def run_step(self, images: torch.Tensor, targets: list[dict[str, Any]],
                 end: int) -> StepInfo:
        """One optimisation step on a batch: images (B, T, 3, H, W), targets per clip."""
        tc = self.cfg.train
        images = images.to(self.device, non_blocking=True)
        targets = _to_device(targets, self.device)
        if self.teacher is not None:
            self.teacher.annotate(targets)
        lr = self.optimizer.param_groups[0]["lr"]

        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            losses = self.ddp_model(images, targets)
        total = losses["total"]
        # Always backward (keeps DDP's gradient reduction in step across ranks); a bad step is
        # then dropped before the optimizer sees it.
        self.scaler.scale(total.float()).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.grad is not None],
            tc.grad_clip if tc.grad_clip > 0 else float("inf"))
        bad = torch.tensor([0.0 if bool(torch.isfinite(total.detach())) else 1.0],
                           device=self.device)
        D.all_reduce_(bad, "max")
        if bad.item() > 0 or (not self.use_amp and not math.isfinite(grad_norm.item())):
            self._skip_step(float(total.detach()))
        else:
            self._consecutive_bad = 0
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

        values, stop = self._reduce(losses)
        now = time.time()
        inst = tc.batch_size * self.ctx.world_size / max(now - self._t_step, 1e-9)
        self._t_step = now
        self._speed = inst if self._speed is None else 0.9 * self._speed + 0.1 * inst
        self.history.append({"step": self.step, **values, "lr": lr})
        return StepInfo(self.step, end, values, lr, float(grad_norm), self._speed, stop,
                        images, targets)

    def _skip_step(self, total: float) -> None:
        self.skipped_steps += 1
        self._consecutive_bad += 1
        self.optimizer.zero_grad(set_to_none=True)
        if self.use_amp:
            self.scaler.update()  # lowers the scale after overflow
        log.warning("step %d: non-finite loss/gradient (%.4g); step skipped", self.step + 1,
                    total)
        if self._consecutive_bad >= MAX_CONSECUTIVE_BAD_STEPS:
            raise TrainingError(
                f"{self._consecutive_bad} steps in a row had a non-finite loss or gradient "
                f"(last at step {self.step + 1}); training diverged. Lower train.lr (now "
                f"{self.cfg.train.lr:g}), check the data, or resume from an earlier step_<N>.pt")

    def _reduce(self, losses: dict[str, torch.Tensor]) -> tuple[dict[str, float], bool]:
        """Mean of every loss over ranks, and whether any rank wants to stop (one collective)."""
        if self.loss_keys is None:
            self.loss_keys = list(losses)
        keys = self.loss_keys
        vec = torch.stack([losses[k].detach().float().reshape(()) if k in losses
                           else torch.tensor(float("nan"), device=self.device) for k in keys]
                          + [torch.tensor(float(self.stop_requested), device=self.device)])
        D.all_reduce_(vec, "sum")
        vec = vec.cpu()
        values = {k: float(v) / self.ctx.world_size for k, v in zip(keys, vec[:-1])}
        return values, vec[-1].item() > 0

    def _result(self, stopped_early: bool) -> TrainResult:
        tc = self.cfg.train
        elapsed = self.elapsed_before + (time.time() - self._t0)
        tail = self.history[-tc.log_every:]
        final = {k: float(np.mean([h[k] for h in tail])) for k in (tail[0] if tail else {})
                 if k not in ("step", "lr")}
        res = TrainResult(self.step, elapsed, final, self.last_checkpoint, self.skipped_steps,
                          stopped_early, self.history)
        self.info(self.end_summary(res))
        return res
