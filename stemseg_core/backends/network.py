"""What a backend builds its graphs from and keys its artifacts by, with or without torch.

With torch, that is the loaded model (an ``nn.Module``): the backends export it and hash its
weights. A runtime without torch has no model: the graphs come from the engine cache (built
earlier by a process with torch, `stemseg export`), found by the same keys, whose parts the
checkpoint index (checkpoint_index.py) gives: the config, the weights hash and the torch
version of the export. :class:`NetworkSource` carries either.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stemseg_core.config import Config


@dataclass
class NetworkSource:
    """The network as the backends see it.

    ``cfg``: the effective config (its ``model`` section is hashed into the keys);
    ``weights``: the weights hash (artifact_key.weights_hash); ``torch_version``: the torch
    that exported (or exports) the graphs; ``module``: the torch model, None where the graphs
    come from the cache only; ``file_sha256``, ``checkpoint``: the checkpoint file's hash and
    path; ``build_missing(backend, frame_shape)``: builds the graphs a backend misses for model
    inputs of ``frame_shape`` (3, Hp, Wp), every clip length, into its cache (a child process
    with torch, runtime_loading.py); None where nothing can build them here.

    The streaming tracker holds it in place of a model where none is loaded: ``to`` and
    ``eval`` return it unchanged, as a model's do when already there.
    """

    cfg: Config
    weights: str
    torch_version: str
    module: Any = None
    file_sha256: str | None = None
    checkpoint: str | None = None
    build_missing: Callable[[Any, tuple[int, int, int]], None] | None = None

    def to(self, *_: Any, **__: Any) -> NetworkSource:
        return self

    def eval(self) -> NetworkSource:
        return self


__all__ = ["NetworkSource"]
