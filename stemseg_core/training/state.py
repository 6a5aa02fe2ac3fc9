"""Random-number-generator state as tensors and plain data, so checkpoints load with
``torch.load(weights_only=True)``.

``rng_state()`` -> {"python": random.getstate() (tuples of ints), "numpy": {"key": (624,) int64
tensor, "pos": int, "has_gauss": int, "cached_gaussian": float}, "torch": (N,) uint8 tensor,
"cuda": [(M,) uint8 tensor per GPU] where CUDA is available}.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch


def _numpy_state() -> dict[str, Any]:
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {"bit_generator": str(name), "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(s: dict[str, Any]) -> None:
    key = np.asarray(s["key"].numpy() if torch.is_tensor(s["key"]) else s["key"], dtype=np.uint32)
    np.random.set_state((s["bit_generator"], key, s["pos"], s["has_gauss"],
                         s["cached_gaussian"]))


def rng_state() -> dict[str, Any]:
    """The RNG states of python, numpy, torch (and CUDA) in safe-to-load types."""
    state = {"python": random.getstate(), "numpy": _numpy_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):  # a different GPU count: keep the seeded states
            torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


