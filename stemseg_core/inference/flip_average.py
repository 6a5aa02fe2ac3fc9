"""Horizontal-flip test-time augmentation: average the clip's outputs with its mirror image's.

Not in the paper. The network runs on the clip and on the clip flipped left-right; the second
result is flipped back and averaged with the first. Seediness, precisions and semantic logits
only need the flip back. An embedding dim holding the x coordinate (mixing letter ``x``) is
offset + x, with x on a grid symmetric about the image centre
(``model/mixings/coordinate_letters.py``), so the mirror's value at column W-1-j, negated,
estimates the value at column j. Free and y/t dims are flipped back unchanged. It doubles the
network's time; the clustering sees one set of maps.

Shapes: clip (B, T, 3, H, W); outputs (B, C, T, h, w) as ``STEmSeg.forward`` in eval mode.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: The model's outputs as numpy float32 arrays (backends/runner.py).
Outputs = dict[str, np.ndarray]


def unflip_outputs(out: Outputs, x_dims: list[int]) -> Outputs:
    """Outputs of a mirrored clip mapped back to the original's columns (module doc)."""
    back = {k: v[..., ::-1] for k, v in out.items()}
    if "embeddings" in back and x_dims:
        emb = back["embeddings"].copy()
        emb[:, x_dims] = -emb[:, x_dims]
        back["embeddings"] = emb
    return back


def mirror(clip: np.ndarray) -> np.ndarray:
    """The clip flipped left-right (contiguous, as the network takes it)."""
    return np.ascontiguousarray(clip[..., ::-1])


def average(out: Outputs, mirrored_out: Outputs, x_dims: list[int]) -> Outputs:
    """Mean of a clip's outputs and its mirror's, unflipped, key by key."""
    back = unflip_outputs(mirrored_out, x_dims)
    return {k: np.float32(0.5) * (v + back[k]) for k, v in out.items()}


def predict_with_flip(model: Callable[[np.ndarray], Outputs], clip: np.ndarray,
                      x_dims: list[int]) -> Outputs:
    """Mean of ``model(clip)`` and the unflipped ``model(clip[..., ::-1])``, key by key."""
    out = model(clip)
    return average(out, model(mirror(clip)), x_dims)


def predict_many(run_many: Callable[[list[np.ndarray]], list[Outputs]],
                 clips: list[np.ndarray], x_dims: list[int], flip: bool) -> list[Outputs]:
    """Each clip's outputs from ONE ``run_many`` call (``NetworkRunner.run_many``), the mirrored
    clips in that same call with ``flip`` (then averaged as by predict_with_flip)."""
    if not flip:
        return run_many(list(clips))
    outs = run_many(list(clips) + [mirror(c) for c in clips])
    n = len(clips)
    return [average(outs[i], outs[n + i], x_dims) for i in range(n)]
