"""The frozen teacher of loss.distill: checks, its outputs, the term in a real training step."""
from __future__ import annotations

import csv

import pytest
import torch

from stemseg_core.checkpoint import save_checkpoint
from stemseg_core.cli import main
from stemseg_core.config import ConfigError, load_config
from stemseg_core.data.synth import generate_dataset
from stemseg_core.model import build_model
from stemseg_core.training.teacher import Teacher
from stemseg_core.training.trainer import Trainer, TrainingError

JPEG = "data.camera_effects={jpeg: {prob: 1.0, severity: [3, 3]}}"


def test_teacher_needs_distill_and_distill_needs_teacher():
    with pytest.raises(ConfigError, match="train.teacher=''"):
        load_config(None, ["loss.distill=0.5"])
    with pytest.raises(ConfigError, match="loss.distill=0.0"):
        load_config(None, ["train.teacher=t.pt"])
    with pytest.raises(ConfigError, match="loss.distill must be >= 0"):
        load_config(None, ["loss.distill=-1", "train.teacher=t.pt"])


def test_teacher_must_predict_what_the_student_predicts(tmp_path, tiny_config, tiny_checkpoint):
    with pytest.raises(TrainingError, match="train.teacher: checkpoint not found"):
        Teacher(tmp_path / "missing.pt", tiny_config, torch.device("cpu"))
    tiny_config.model.class_names = ["background", "car", "pedestrian", "cyclist"]
    with pytest.raises(TrainingError, match="model.class_names"):
        Teacher(tiny_checkpoint, tiny_config, torch.device("cpu"))


def test_annotate_puts_the_frozen_models_outputs_on_the_clean_clip(tiny_config,
                                                                     tiny_checkpoint):
    teacher = Teacher(tiny_checkpoint, tiny_config, torch.device("cpu"))
    assert not any(p.requires_grad for p in teacher.model.parameters())
    torch.manual_seed(1)
    clean = torch.rand(2, 4, 3, 64, 128) * 255
    targets = [{"masks": None, "clean_images": clean[0]}, {"masks": None,
                                                           "clean_images": clean[1]}]
    teacher.annotate(targets)
    model = build_model(tiny_config)
    model.load_state_dict(teacher.model.state_dict())
    with torch.no_grad():
        ref = model.train().predict(clean)  # batch statistics, as the student trains
    assert all("clean_images" not in t for t in targets)
    for i, t in enumerate(targets):
        assert set(t["teacher"]) == {"embeddings", "precisions", "raw_variance", "seediness",
                                     "semantic"}
        torch.testing.assert_close(t["teacher"]["seediness"], ref["seediness"][i])
        torch.testing.assert_close(t["teacher"]["embeddings"], ref["embeddings"][i])
    with pytest.raises(TrainingError, match="clean_images"):
        teacher.annotate([{"masks": None}])


def _losses(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("effects,zero", [("data.camera_effects={}", True), (JPEG, False)])
def test_training_step_with_the_init_weights_as_teacher(tmp_path, tiny_overrides, effects, zero):
    """Student = teacher at step 1: the term is 0 on clean clips and > 0 under JPEG 57; it is
    logged and weighs into the total."""
    generate_dataset(tmp_path / "d", sequences=1, frames=6, height=64, width=128, seed=0,
                     val_fraction=0.0)
    cfg = load_config("config/model/demo_cpu.yaml", [
        *tiny_overrides, "model.output_stride=4", effects, "loss.distill=2.0",
        f"train.teacher={tmp_path / 'teacher.pt'}", "train.max_steps=1", "train.batch_size=2",
        "data.num_workers=0", "train.image_log_every=0", "data.image_augmented_fraction=0"])
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "teacher.pt", build_model(cfg).state_dict(), cfg)
    res = Trainer(cfg, tmp_path / "run", tmp_path / "d", init=tmp_path / "teacher.pt",
                  progress=False, keep_checkpoints=0).train()
    step = res.history[0]
    rest = sum(getattr(cfg.loss, k) * step[k]
               for k in ("embedding", "smoothness", "seediness", "semantic"))
    assert step["total"] == pytest.approx(rest + 2.0 * step["distill"], rel=1e-5)
    if zero:
        assert step["distill"] == pytest.approx(0.0, abs=1e-6)
    else:
        assert step["distill"] > 1e-3
    assert float(_losses(tmp_path / "run" / "losses.csv")[0]["distill"]) == pytest.approx(
        step["distill"], rel=1e-5, abs=1e-9)


def test_cli_refuses_a_missing_teacher_before_writing(tmp_path, capsys):
    generate_dataset(tmp_path / "d", sequences=1, frames=6, height=64, width=128, seed=0,
                     val_fraction=0.0)
    rc = main(["train", "--config", "config/model/demo_cpu.yaml", "--data", str(tmp_path / "d"),
               "--out", str(tmp_path / "run"), "--set", "loss.distill=1",
               f"train.teacher={tmp_path / 'nope.pt'}"])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
