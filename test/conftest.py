"""Shared fixtures: a tiny model config and checkpoint that run in well under a second on CPU."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

TINY_OVERRIDES = [
    "model.backbone.name=mobilenet_v3_small",
    "model.backbone.frozen_stages=0",
    "model.backbone.fpn_channels=32",
    "model.decoder.widths=[32,32,32,32]",
    "model.decoder.groupnorm_groups=8",
    "model.clip_length=4",
    "inference.clip_overlap=2",
    "data.height=64",
    "data.width=128",
    "train.amp=false",
]


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_override_tuple():
    """The tiny model's overrides for fixtures wider than one test (module or session scope);
    a test module cannot import them from `conftest`: under test/ros another conftest has that
    name."""
    return tuple(TINY_OVERRIDES)


@pytest.fixture
def tiny_overrides():
    """The `--set` overrides of the tiny test model (a fresh list per test)."""
    return list(TINY_OVERRIDES)


@pytest.fixture
def tiny_config():
    """A Config small enough for unit tests: MobileNetV3-small, 32-channel decoders, T=4."""
    from stemseg_core.config import load_config

    return load_config(None, list(TINY_OVERRIDES))


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_config):
    """Path of a randomly initialised (seeded) tiny checkpoint."""
    import torch

    from stemseg_core.checkpoint import save_checkpoint
    from stemseg_core.model import build_model

    torch.manual_seed(0)
    model = build_model(tiny_config)
    return save_checkpoint(tmp_path / "tiny.pt", model.state_dict(), tiny_config)
