"""Flip test-time augmentation: x-embedding negation, exact on a mirror-symmetric fake network."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stemseg_core.inference.flip_average import predict_with_flip, unflip_outputs
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_core.model.mixings.coordinate_letters import Mixing, coordinate_grid


def test_unflip_mirrors_columns_and_negates_only_x_dims():
    emb = np.tile(np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 1, 1, 1, 3),
                  (1, 3, 1, 1, 1))  # (1, E=3, 1, 1, 3)
    seed = np.array([0.1, 0.2, 0.7], np.float32).reshape(1, 1, 1, 3)
    back = unflip_outputs({"embeddings": emb, "seediness": seed}, x_dims=[0])
    assert back["embeddings"][0, 0, 0, 0].tolist() == [-3.0, -2.0, -1.0]
    assert back["embeddings"][0, 1, 0, 0].tolist() == [3.0, 2.0, 1.0]
    np.testing.assert_allclose(back["seediness"][0, 0, 0], [0.7, 0.2, 0.1], rtol=1e-6)
    assert emb[0, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]     # input untouched


def test_x_grid_is_mirror_symmetric():
    """Flip test relies on it: the x coordinate of column W-1-j is minus that of column j."""
    for w in (5, 10, 320):
        g = coordinate_grid(2, 3, w)
        assert torch.equal(g[0].flip(-1), -g[0]) and torch.equal(g[1].flip(-1), g[1])
    emb = Mixing("xyt").embeddings(torch.zeros(1, 3, 2, 3, 8)).numpy()  # zero offsets: the grid
    np.testing.assert_allclose(unflip_outputs({"embeddings": emb}, [0])["embeddings"], emb,
                               atol=1e-7)


def test_columns_ramp_averages_to_its_mean():
    """A network that sees only the column index (not mirror-symmetric) is averaged out."""
    def ramp(clip):
        w = clip.shape[-1]
        return {"seediness": np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32),
                                             (1, 2, 3, w)).copy()}

    out = predict_with_flip(ramp, np.zeros((1, 2, 3, 3, 8), np.float32), x_dims=[])
    np.testing.assert_allclose(out["seediness"], np.full((1, 2, 3, 8), 0.5), rtol=1e-6)


class MirrorBlobModel(nn.Module):
    """Fake network whose outputs mirror exactly with its input: each bright colour channel is
    one object; embedding = (x about the centre, y, 10 * channel); pooled over stride blocks."""

    def __init__(self, stride: int = 4):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.stride = stride
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        b, t, c, h, w = images.shape
        s = self.stride
        small = F.avg_pool2d(images.reshape(b * t, c, h, w), s).reshape(b, t, c, h // s, w // s)
        hh, ww = small.shape[-2:]
        on = small > 128
        fg = on.any(dim=2)
        chan = on.float().argmax(dim=2).float()
        ys, xs = torch.meshgrid(torch.arange(hh, dtype=torch.float32),
                                torch.arange(ww, dtype=torch.float32) - (ww - 1) / 2,
                                indexing="ij")
        emb = torch.stack([xs.expand(b, t, hh, ww), ys.expand(b, t, hh, ww), 10 * chan], dim=1)
        prec = torch.ones_like(emb)
        prec[:, :2] = 1 / 16.0    # sigma 4 output px: blobs 3-4 px wide, 6+ px apart
        sem = torch.zeros(b, 3, t, hh, ww)
        sem[:, 0] = torch.where(fg, -5.0, 5.0)
        sem[:, 1] = torch.where(chan == 0, 3.0, 0.0)
        sem[:, 2] = torch.where(chan == 0, 0.0, 3.0)
        return {"embeddings": emb, "precisions": prec, "seediness": fg.float() * 0.9,
                "semantic": sem}


def _frames(n=8, h=40, w=72):
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[4:16, 4 + 2 * i:16 + 2 * i, 0] = 255       # red, moving right
        img[4:16, 56:68, 0] = 255                       # red too, apart from it only in x
        img[20:32, 50:62, 1] = 255                      # green, still
        out.append(img)
    return out


def test_mirror_symmetric_network_gives_its_own_outputs():
    model = MirrorBlobModel()

    def net(clip: np.ndarray) -> dict[str, np.ndarray]:  # numpy in and out, as a runner
        return {k: v.numpy() for k, v in model(torch.from_numpy(clip.copy())).items()}

    clip = np.stack(_frames(4, 64, 96)).transpose(0, 3, 1, 2).astype(np.float32)[None]
    plain = net(clip)
    both = predict_with_flip(net, clip, x_dims=[0])
    for k in plain:
        np.testing.assert_allclose(both[k], plain[k], atol=1e-6, err_msg=k)


def test_tracker_with_flip_test_runs_twice_per_clip_and_keeps_tracks(tiny_config):
    def track(flip):
        cfg = dataclasses.replace(tiny_config, inference=dataclasses.replace(
            tiny_config.inference, flip_test=flip))
        model = MirrorBlobModel()
        tr = StreamingTracker(model, cfg, device="cpu")
        assert tr.x_dims == [0]                        # xyt mixing: dim 0 holds x
        res = []
        for i, img in enumerate(_frames()):
            res += tr.push(img, i)
        res += tr.flush()
        return model.calls, [[(r.track_id, r.class_name, r.mask.tobytes()) for r in fr.instances]
                             for fr in res]

    calls_plain, plain = track(False)
    calls_flip, flipped = track(True)
    assert calls_flip == 2 * calls_plain > 0
    assert flipped == plain
    # both red objects found apart in every frame (x averaged away would merge them)
    assert [sorted(c for _, c, _ in fr) for fr in plain] == [["car", "car", "pedestrian"]] * 8
