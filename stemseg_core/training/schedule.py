"""Learning-rate schedule of the paper: constant, then exponential decay to lr * decay_factor.

STEm-Seg (sec. 4, and the authors' `exponential_lr` setting) keeps the base LR for the first part
of training and then decays it exponentially so that it reaches ``lr * lr_decay_factor`` (x0.1)
exactly at ``max_steps``::

    factor(s) = 1                                            for s <= decay_start
    factor(s) = decay_factor ** ((s - decay_start) / (max_steps - decay_start))   afterwards

``s`` is the number of optimizer steps already taken, i.e. the LR used for step ``s`` (0-based).
"""
from __future__ import annotations

import functools

import torch


def lr_factor(step: int, max_steps: int, decay_start: int, decay_factor: float) -> float:
    """Multiplier of the base LR for optimizer step `step` (pure; clamped after max_steps)."""
    if step <= decay_start or max_steps <= decay_start:
        return 1.0
    progress = min(step - decay_start, max_steps - decay_start) / (max_steps - decay_start)
    return float(decay_factor) ** progress


def build_scheduler(optimizer: torch.optim.Optimizer, max_steps: int, decay_start: int,
                    decay_factor: float) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying :func:`lr_factor`; call ``scheduler.step()`` once per optimizer step."""
    fn = functools.partial(lr_factor, max_steps=max_steps, decay_start=decay_start,
                           decay_factor=decay_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
