"""Embedding mixing functions (paper sec. 3.2): which embedding dims hold fixed coordinates.

A mixing name is a string of letters, one per embedding dim: ``x``/``y``/``t`` = the network's
offset is added to that coordinate of the pixel, ``f`` = free dim (offset only, fixed variance).
Offsets are ``tanh(0.25 * raw)`` (as the authors). Coordinates: x in [-max(1, W/H), max(1, W/H)],
y in [-max(1, H/W), max(1, H/W)], t in [-time_scale, time_scale] over the clip (0 when T == 1).
The letters also give the order of the dims: the authors' "xyt" is ``tyx`` here and their
"xyff" is ``yxff``.

Registered here (registry.MIXING_FUNCTIONS), by their letters: the paper's six, and the authors'
dim orders for their released models (their "xyt" = ``tyx``, their "xyff" = ``yxff``).
"""
from __future__ import annotations

import torch
from torch import nn

from stemseg_core.config import EmbeddingConfig
from stemseg_core.registry import MIXING_FUNCTIONS

#: precision = exp(raw) * PRECISION_SCALE for the non-free dims (authors' variance head).
PRECISION_SCALE = 10.0
OFFSET_SCALE = 0.25


def coordinate_grid(t: int, h: int, w: int, time_scale: float = 1.0,
                    device: torch.device | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(3, t, h, w) tensor with the x, y, t coordinates of every output pixel."""
    x_span = max(1.0, w / h)
    y_span = max(1.0, h / w)
    xs = torch.linspace(-x_span, x_span, w, device=device, dtype=dtype)
    ys = torch.linspace(-y_span, y_span, h, device=device, dtype=dtype)
    if t > 1:
        ts = torch.linspace(-time_scale, time_scale, t, device=device, dtype=dtype)
    else:
        ts = torch.zeros(t, device=device, dtype=dtype)
    gx = xs.view(1, 1, w).expand(t, h, w)
    gy = ys.view(1, h, 1).expand(t, h, w)
    gt = ts.view(t, 1, 1).expand(t, h, w)
    return torch.stack([gx, gy, gt], dim=0)


class Mixing(nn.Module):
    """Turns raw head outputs into embeddings and precisions for one mixing function.

    Inputs: ``raw_embedding`` (B, E, T, h, w) and ``raw_variance`` (B, V, T, h, w) with
    V = number of non-free dims. Outputs: embeddings (B, E, T, h, w) and precisions
    (B, E, T, h, w) = 1 / variance, where free dims have the fixed precision 1 / free_dim_std**2.
    """

    def __init__(self, mixing: str, free_dim_std: float = 0.3, time_scale: float = 1.0,
                 free_precision_buffer: bool = False):
        super().__init__()
        bad = [c for c in mixing if c not in "xytf"]
        repeated = [c for c in "xyt" if mixing.count(c) > 1]
        if not mixing or bad or repeated:
            raise ValueError(f"mixing function '{mixing}': need letters x, y, t (each at most "
                             f"once) and f, e.g. 'xyt' or 'xyff'")
        self.mixing = mixing
        self.dims = len(mixing)
        self.time_scale = float(time_scale)
        self.free_precision = 1.0 / float(free_dim_std) ** 2
        self.coord_index = [("x", "y", "t").index(c) if c != "f" else -1 for c in mixing]
        self.variance_dims = [i for i, c in enumerate(mixing) if c != "f"]
        self.num_variance = len(self.variance_dims)
        n_free = self.dims - self.num_variance
        if free_precision_buffer and n_free:
            # The authors keep 1 / std**2 of the free dims as a (1, n_free) buffer (their
            # checkpoints carry it); the free dims' precisions are read from it.
            self.register_buffer("free_dim_bandwidths", torch.full(
                (1, n_free), 1.0 / torch.tensor(float(free_dim_std)).pow(2).item()))

    def grid(self, t: int, h: int, w: int, device: torch.device,
             dtype: torch.dtype = torch.float32, time_scale: float | None = None) -> torch.Tensor:
        """(E, t, h, w) coordinates per embedding dim (0 for free dims); time_scale overrides
        the configured one."""
        g = coordinate_grid(t, h, w, self.time_scale if time_scale is None else time_scale,
                            device=device, dtype=dtype)
        rows = [g[i] if i >= 0 else torch.zeros_like(g[0]) for i in self.coord_index]
        return torch.stack(rows, dim=0)

    def embeddings(self, raw_embedding: torch.Tensor,
                   time_scale: float | None = None) -> torch.Tensor:
        """(B, E, T, h, w) raw -> tanh(0.25 raw) + grid."""
        t, h, w = raw_embedding.shape[2:]
        offsets = torch.tanh(OFFSET_SCALE * raw_embedding)
        return offsets + self.grid(int(t), int(h), int(w), raw_embedding.device,
                                   raw_embedding.dtype, time_scale).unsqueeze(0)

    def precisions(self, raw_variance: torch.Tensor) -> torch.Tensor:
        learned = torch.exp(raw_variance) * PRECISION_SCALE
        free = getattr(self, "free_dim_bandwidths", None)
        rows = []
        k = f = 0
        for c in self.mixing:
            if c == "f":
                if free is None:
                    rows.append(torch.full_like(learned[:, :1], self.free_precision))
                else:
                    rows.append(free[0, f].to(learned.dtype).expand_as(learned[:, :1]))
                f += 1
            else:
                rows.append(learned[:, k:k + 1])
                k += 1
        return torch.cat(rows, dim=1)


LETTER_MIXINGS = ("xy", "xyt", "xyf", "xytf", "xyff", "xyfff", "tyx", "yxff")


def _register(name: str) -> None:
    @MIXING_FUNCTIONS.register(name)
    def build(cfg: EmbeddingConfig, free_precision_buffer: bool = False) -> Mixing:
        return Mixing(name, cfg.free_dim_std, cfg.time_scale,
                      free_precision_buffer=free_precision_buffer)


for _name in LETTER_MIXINGS:
    _register(_name)
