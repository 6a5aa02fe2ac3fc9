"""Tiny stand-ins for the model and data set, so trainer tests run in a fraction of a second.

FakeModel follows the model contract (train: ``model(images, targets)`` -> dict of scalar losses
incl. "total"; eval: dict of outputs) and uses dropout, so exact resume also checks RNG restore.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

T, H, W = 2, 16, 24


class FakeModel(nn.Module):
    def __init__(self, nan_after: int | None = None):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(4, 8)
        self.head = nn.Conv3d(8, 2, 1)
        self.nan_after = nan_after
        self.calls = 0

    def forward(self, images, targets=None):
        x = images.permute(0, 2, 1, 3, 4) / 255.0 - 0.5
        f = F.relu(self.norm(self.conv(x)))
        f = F.dropout(f, 0.1, training=self.training)
        out = self.head(f)  # (B, 2, T, H, W)
        if not self.training:
            return {"embeddings": out, "precisions": out.exp(),
                    "seediness": torch.sigmoid(out[:, :1]), "semantic": out}
        fg = torch.stack([t["masks"].any(0) for t in targets]).float()
        bce = F.binary_cross_entropy_with_logits(out[:, 0], fg)
        aux = 0.1 * (out[:, 1] - fg).pow(2).mean()
        self.calls += 1
        if self.nan_after is not None and self.calls > self.nan_after:
            bce = bce * float("nan")
        return {"bce": bce, "aux": aux, "total": bce + aux}


class FakeClips(Dataset):
    """`n` clips, each a bright box moving over noise; deterministic per index."""

    def __init__(self, n: int = 8):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(1000 + i)
        images = torch.randint(0, 100, (T, 3, H, W), generator=g, dtype=torch.uint8)
        masks = torch.zeros(1, T, H, W, dtype=torch.bool)
        y, x = 2 + i % 6, 3 + (i * 5) % 10
        for t in range(T):
            masks[0, t, y:y + 6, x + t:x + t + 8] = True
        images[:, :, :, :][masks[0].unsqueeze(1).expand(-1, 3, -1, -1)] = 220
        return {"images": images, "masks": masks, "classes": torch.tensor([1]),
                "ignore": torch.zeros(T, H, W, dtype=torch.bool)}


def collate(batch):
    images = torch.stack([b["images"] for b in batch]).float()
    targets = [{k: v for k, v in b.items() if k != "images"} for b in batch]
    return images, targets


#: The kill-and-resume runs: a checkpoint after every step, so kills land in and between writes.
KILL_TEST_OVERRIDES = ["train.max_steps=10", "train.checkpoint_every=1"]


def fake_config(tmp_overrides: list[str] | None = None):
    from stemseg_core.config import load_config

    return load_config(None, ["train.amp=false", "train.lr=0.05", "train.max_steps=6",
                              "train.lr_decay_start=2", "train.checkpoint_every=3",
                              "train.log_every=1", "train.image_log_every=0",
                              "train.batch_size=2", "data.num_workers=0",
                              *(tmp_overrides or [])])


def make_trainer(out, cfg=None, n: int = 8, **kw):
    from stemseg_core.training.trainer import Trainer

    cfg = cfg or fake_config()
    return Trainer(cfg, out, dataset=FakeClips(n), collate_fn=collate,
                   model_factory=kw.pop("model_factory", lambda cfg: FakeModel()), progress=False,
                   **kw)


def weights_checksum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum() * (i + 1)
                     for i, p in enumerate(model.parameters())))
