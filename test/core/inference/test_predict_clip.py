"""StreamingTracker.predict_clip: the push/flush network path, returned as numpy maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stemseg_core.inference.preprocess import geometry
from stemseg_core.inference.tracker import StreamingTracker

H, W = 40, 72  # padded to 64x96 -> outputs 16x24 at stride 4


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def test_predict_clip_shapes_and_values(tiny_checkpoint):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    out = tr.predict_clip(_frames(4))
    assert set(out) == {"embeddings", "precisions", "seediness", "semantic"}
    assert out["embeddings"].shape == (3, 4, 16, 24) and out["precisions"].shape == (3, 4, 16, 24)
    assert out["seediness"].shape == (4, 16, 24) and out["semantic"].shape == (3, 4, 16, 24)
    assert all(v.dtype == np.float32 for v in out.values())
    np.testing.assert_allclose(out["semantic"].sum(0), 1.0, atol=1e-5)  # probabilities
    assert 0 <= out["seediness"].min() and out["seediness"].max() <= 1
    # the same clip through the model by hand (the tracker's padding: pixel mean)
    clip = np.stack([tr._prepare(f, geometry(H, W)) for f in _frames(4)])[None]
    with torch.inference_mode():
        ref = tr.model(torch.from_numpy(clip))
    np.testing.assert_array_equal(out["embeddings"], ref["embeddings"][0].numpy())
    assert tr.frames_pushed == 0 and tr.pending == 0  # the stream is untouched


def test_predict_clip_goes_through_forward(tiny_checkpoint):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    calls = []
    real = tr._forward

    def spy(clip):
        calls.append(tuple(clip.shape))
        return real(clip)

    tr._forward = spy
    tr.predict_clip(_frames(3))
    for f in _frames(4):
        tr.push(f)
    assert calls == [(1, 3, 3, 64, 96), (1, 4, 3, 64, 96)]


def test_predict_clip_errors(tiny_checkpoint):
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu")
    with pytest.raises(ValueError, match="at least one frame"):
        tr.predict_clip([])
    with pytest.raises(ValueError, match="one size"):
        tr.predict_clip([np.zeros((40, 72, 3), np.uint8), np.zeros((40, 70, 3), np.uint8)])
