"""Checkpoint format: round trip, safe loading (no code from the file runs), versions, hashes, and
clear errors on damaged or foreign files."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from stemseg_core.checkpoint import (
    VERSION,
    CheckpointError,
    ChecksumMismatchError,
    DamagedCheckpointError,
    UnsafeCheckpointError,
    atomic_torch_save,
    content_digest,
    file_sha256,
    load_checkpoint,
    normalize_sha256,
    save_checkpoint,
)
from stemseg_core.cli import main as cli
from stemseg_core.config import load_config

DEMO = Path(__file__).resolve().parents[2] / "checkpoints" / "stemseg_demo.pt"


class CreatesFile:
    """Unpickling this object runs ``open(path, "w")``: the file appearing proves code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_malicious(src: Path, dst: Path, marker: Path) -> Path:
    """A copy of checkpoint `src` with one extra entry whose unpickling creates `marker`."""
    payload = torch.load(src, weights_only=True)
    payload["extra"] = CreatesFile(marker)
    torch.save(payload, dst)
    assert not marker.exists()
    return dst


def test_round_trip_with_overrides(tmp_path):
    cfg = load_config(None, ["model.clip_length=4", "inference.clip_overlap=2"])
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    p = save_checkpoint(tmp_path / "a" / "c.pt", state, cfg, train_state={"step": 7})
    cfg2, payload = load_checkpoint(p, ["inference.clip_overlap=1"])
    assert cfg2.model.clip_length == 4 and cfg2.inference.clip_overlap == 1
    assert torch.equal(payload["model"]["w"], state["w"])
    assert payload["train_state"]["step"] == 7
    assert payload["class_names"] == ["background", "car", "pedestrian"]
    assert payload["version"] == VERSION == 2
    assert payload["file_sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert not list(p.parent.glob("*.tmp"))
    # only tensors and plain data inside: plain torch.load(weights_only=True) reads it
    raw = torch.load(p, weights_only=True)
    assert isinstance(raw["config"], dict) and raw["digest"] == content_digest(raw)


def test_truncated_file(tmp_path):
    p = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1000)}, load_config())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedCheckpointError, match="damaged or truncated"):
        load_checkpoint(p)


def test_flipped_weight_byte_is_caught_by_the_digest(tmp_path):
    # torch.load itself does not notice a changed byte inside a tensor's data
    p = save_checkpoint(tmp_path / "c.pt", {"w": torch.arange(4096.0)}, load_config())
    data = bytearray(p.read_bytes())
    at = data.find(np.arange(4096, dtype=np.float32)[2000:2002].tobytes())
    assert at > 0
    data[at] ^= 0x01
    p.write_bytes(bytes(data))
    assert torch.load(p, weights_only=True)["model"]["w"][2000] != 2000.0  # loads, silently wrong
    with pytest.raises(DamagedCheckpointError, match="do not match the digest"):
        load_checkpoint(p)


def test_foreign_file_and_missing(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(1)}, p)
    with pytest.raises(CheckpointError, match="not a stemseg checkpoint"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_unknown_versions_are_refused_naming_both(tmp_path):
    cfg = load_config()
    for version, extra in ((3, "newer stemseg"), (0, "reads versions 1, 2")):
        payload = {"format": "stemseg-checkpoint", "version": version, "config": cfg.to_dict(),
                   "class_names": list(cfg.model.class_names), "model": {}}
        p = atomic_torch_save(payload, tmp_path / f"v{version}.pt")
        with pytest.raises(CheckpointError, match=f"version {version} is not supported") as e:
            load_checkpoint(p)
        assert "writes version 2" in str(e.value) and extra in str(e.value)


def test_version_1_training_checkpoint_is_migrated(tmp_path):
    """Format 1 stored numpy's RNG state as np.random.get_state(): read it (numpy arrays are
    allow-listed) and convert it, so an old run resumes."""
    cfg = load_config()
    np.random.seed(123)
    v1 = {"format": "stemseg-checkpoint", "version": 1, "config": cfg.to_dict(),
          "class_names": list(cfg.model.class_names), "model": {"w": torch.ones(2)},
          "train_state": {"step": 5, "rng": [{"numpy": np.random.get_state(), "python": (3, (1,
                                               2), None), "torch": torch.get_rng_state()}]}}
    p = tmp_path / "v1.pt"
    torch.save(v1, p)
    expected = np.random.random_sample(3)
    _, payload = load_checkpoint(p)
    assert payload["version"] == 2 and payload["train_state"]["step"] == 5
    npst = payload["train_state"]["rng"][0]["numpy"]
    assert torch.is_tensor(npst["key"]) and npst["key"].shape == (624,)
    from stemseg_core.training.state import _set_numpy_state

    _set_numpy_state(npst)
    assert np.array_equal(np.random.random_sample(3), expected)


def test_demo_checkpoint_loads_with_weights_only():
    raw = torch.load(DEMO, weights_only=True)  # as shipped: no allow-list needed
    assert raw["version"] == VERSION and isinstance(raw["config"], dict)
    assert "train_state" not in raw  # an export: weights, config and class names only
    cfg, payload = load_checkpoint(DEMO)
    assert payload["version"] == VERSION and cfg.model.class_names == raw["class_names"]
    assert payload["file_sha256"] == file_sha256(DEMO)


def test_sha256_pin(tmp_path):
    p = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(3)}, load_config())
    good = file_sha256(p)
    assert good == hashlib.sha256(p.read_bytes()).hexdigest()
    load_checkpoint(p, sha256=good.upper())
    load_checkpoint(p, sha256=f" sha256:{good} ")
    load_checkpoint(p, sha256="")  # "" = any file
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError) as e:
        load_checkpoint(p, sha256=wrong)
    assert good in str(e.value) and wrong in str(e.value)
    with pytest.raises(CheckpointError, match="not a SHA-256"):
        normalize_sha256("abc")


def test_hash_is_checked_before_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    bad = write_malicious(DEMO, tmp_path / "bad.pt", marker)
    with pytest.raises(ChecksumMismatchError):
        load_checkpoint(bad, allow_pickle=True, sha256=file_sha256(DEMO))
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# A checkpoint whose unpickling would create a file: refused everywhere, loads when trusted


def test_load_checkpoint_refuses_code_and_loads_when_trusted(tmp_path):
    marker = tmp_path / "pwned"
    bad = write_malicious(DEMO, tmp_path / "bad.pt", marker)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_checkpoint(bad)
    msg = str(e.value)
    assert "--allow-pickle" in msg and "allow_pickle" in msg and "run arbitrary code" in msg
    assert "io.open" in msg  # what it would have called
    assert not marker.exists()
    cfg, payload = load_checkpoint(bad, allow_pickle=True)
    assert marker.exists()  # the trusted file was fully unpickled
    assert cfg.model.class_names == payload["class_names"]


def test_tracker_refuses_code(tmp_path):
    from stemseg_core.inference.tracker import StreamingTracker

    marker = tmp_path / "pwned"
    bad = write_malicious(DEMO, tmp_path / "bad.pt", marker)
    with pytest.raises(UnsafeCheckpointError):
        StreamingTracker.from_checkpoint(bad, device="cpu")
    assert not marker.exists()
    tracker = StreamingTracker.from_checkpoint(bad, device="cpu", allow_pickle=True)
    assert marker.exists() and tracker.weights_sha256 == file_sha256(bad)
    with pytest.raises(ChecksumMismatchError):
        StreamingTracker.from_checkpoint(DEMO, device="cpu", sha256="f" * 64)
    assert StreamingTracker.from_checkpoint(DEMO, device="cpu").weights_sha256 == \
        file_sha256(DEMO)


def test_infer_cli_refuses_code(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    assert cli(["synth", "--out", str(data), "--sequences", "2", "--frames", "2", "--height",
                "64", "--width", "128", "--val-fraction", "0.5", "--quiet"]) == 0
    marker = tmp_path / "pwned"
    bad = write_malicious(DEMO, tmp_path / "bad.pt", marker)
    args = ["infer", "--checkpoint", str(bad), "--data", str(data), "--split", "val",
            "--out", str(out), "--device", "cpu"]
    capsys.readouterr()
    assert cli(args) != 0
    err = capsys.readouterr().err
    assert "refused" in err and "--allow-pickle" in err
    assert not marker.exists()
    assert cli([*args, "--sha256", "0" * 64, "--allow-pickle"]) != 0
    assert file_sha256(bad) in capsys.readouterr().err and not marker.exists()
    assert cli([*args, "--allow-pickle", "--sha256", file_sha256(bad)]) == 0
    assert marker.exists() and list(out.glob("*.txt"))


def test_train_cli_refuses_code_for_init_and_resume(tmp_path, tiny_checkpoint, tiny_overrides,
                                                     capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    assert cli(["synth", "--out", str(data), "--sequences", "1", "--frames", "5", "--height",
                "64", "--width", "128", "--val-fraction", "0", "--quiet"]) == 0
    marker = tmp_path / "pwned"
    bad = write_malicious(tiny_checkpoint, tmp_path / "bad.pt", marker)
    args = ["train", "--data", str(data), "--out", str(run), "--device", "cpu", "--no-progress",
            "--max-steps", "1", "--set", *tiny_overrides, "train.batch_size=1",
            "data.num_workers=0", "train.image_log_every=0"]
    new = [*args, "--config", str(DEMO.parents[1] / "config" / "model" / "demo_cpu.yaml")]
    capsys.readouterr()

    assert cli([*new, "--init", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "--allow-pickle" in err
    assert not marker.exists() and not run.exists()
    assert cli([*new, "--init", str(bad), "--allow-pickle", "--sha256", "0" * 64]) == 2
    assert file_sha256(bad) in capsys.readouterr().err and not marker.exists()
    assert cli([*new, "--init", str(bad), "--allow-pickle"]) == 0  # trusted: trains from it
    assert marker.exists() and (run / "last.pt").is_file()

    marker.unlink()
    write_malicious(run / "last.pt", run / "last.pt", marker)
    capsys.readouterr()
    assert cli([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "--allow-pickle" in err and not marker.exists()
    assert cli([*args, "--resume", "--allow-pickle"]) == 0  # trusted: resumes (already done)
    assert marker.exists()
