"""Checkpoint format: round trip, and clear errors on damaged or foreign files."""
import pytest
import torch

from stemseg_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from stemseg_core.config import load_config


def test_round_trip_with_overrides(tmp_path):
    cfg = load_config(None, ["model.clip_length=4", "inference.clip_overlap=2"])
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    p = save_checkpoint(tmp_path / "a" / "c.pt", state, cfg, train_state={"step": 7})
    cfg2, payload = load_checkpoint(p, ["inference.clip_overlap=1"])
    assert cfg2.model.clip_length == 4 and cfg2.inference.clip_overlap == 1
    assert torch.equal(payload["model"]["w"], state["w"])
    assert payload["train_state"]["step"] == 7
    assert payload["class_names"] == ["background", "car", "pedestrian"]
    assert not list(p.parent.glob("*.tmp"))


def test_truncated_file(tmp_path):
    p = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1000)}, load_config())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(p)


def test_foreign_file_and_missing(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(1)}, p)
    with pytest.raises(CheckpointError, match="not a stemseg checkpoint"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
