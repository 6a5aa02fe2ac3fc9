"""Deterministic data order: the clips of step s on rank r are a pure function of (seed, s, r).

The global stream of sample positions is cut into epochs; each epoch is a fresh permutation of the
dataset seeded by (seed, epoch). Step s takes positions ``s*B*W + r*B ... + B-1`` (B = batch size
per rank, W = world size), so ranks read disjoint clips and a resumed run continues exactly where
the interrupted one stopped, with no sampler state beyond the step number.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int) -> tuple[int, ...]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return tuple(torch.randperm(n, generator=g).tolist())


def step_indices(seed: int, step: int, rank: int, world_size: int, batch_size: int,
                 dataset_size: int, with_epoch: bool = False) -> list[int]:
    """Dataset indices of the batch that rank `rank` trains on at step `step`.

    with_epoch: return ``epoch * dataset_size + index`` instead, for datasets that draw fresh
    random choices each epoch from that (ClipDataset); their worker copies need no epoch state.
    """
    if dataset_size < 1:
        raise ValueError("the training set is empty")
    start = (step * world_size + rank) * batch_size
    out = []
    for pos in range(start, start + batch_size):
        epoch, offset = divmod(pos, dataset_size)
        index = _epoch_permutation(seed, epoch, dataset_size)[offset]
        out.append(epoch * dataset_size + index if with_epoch else index)
    return out


class StepBatchSampler(Sampler[list[int]]):
    """Batch sampler yielding :func:`step_indices` for steps start_step .. end_step-1."""

    def __init__(self, seed: int, start_step: int, end_step: int, rank: int, world_size: int,
                 batch_size: int, dataset_size: int, with_epoch: bool = False):
        self.with_epoch = with_epoch
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.dataset_size = batch_size, dataset_size

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start_step, self.end_step):
            yield step_indices(self.seed, s, self.rank, self.world_size, self.batch_size,
                               self.dataset_size, self.with_epoch)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)
