"""The frozen teacher of ``cfg.loss.distill`` (not in the paper).

Fine-tuning a tuned model on camera-corrupted clips moves more than its robustness: the
pedestrians' seediness and bandwidths drift from the calibration the inference thresholds were
tuned for (docs/robustness.md). The teacher term holds them: a frozen copy of a checkpoint
(``cfg.train.teacher``, usually the ``--init`` weights) sees each clip *without* its camera effects
(``clean_images`` of data/clips.py), and the student's outputs on the corrupted clip are pulled
toward the teacher's (``losses.distill_loss``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from stemseg_core.checkpoint import CheckpointError, load_checkpoint
from stemseg_core.config import Config
from stemseg_core.training.errors import TrainingError

log = logging.getLogger(__name__)

#: The teacher outputs the teacher term compares (model.predict's keys).
TEACHER_OUTPUTS = ("embeddings", "precisions", "raw_variance", "seediness", "semantic")


class Teacher:
    """A frozen network, built from its own checkpoint's config.

    path: the teacher checkpoint (read safely, pinned by ``sha256`` when given). student_cfg: the
    student's config; the teacher must take the same input (channel order) and predict the same
    classes at the same output stride, or its outputs mean something else.
    """

    def __init__(self, path: str | Path, student_cfg: Config, device: torch.device, *,
                 allow_pickle: bool = False, sha256: str | None = None):
        try:
            cfg, payload = load_checkpoint(path, allow_pickle=allow_pickle, sha256=sha256)
        except CheckpointError as e:
            raise TrainingError(f"train.teacher: {e}") from e
        for what, mine, theirs in (
                ("model.class_names", student_cfg.model.class_names, cfg.model.class_names),
                ("model.output_stride", student_cfg.model.output_stride, cfg.model.output_stride),
                ("model.embedding.mixing", student_cfg.model.embedding.mixing,
                 cfg.model.embedding.mixing),
                ("input.channel_order", student_cfg.input.channel_order,
                 cfg.input.channel_order)):
            if mine != theirs:
                raise TrainingError(
                    f"train.teacher={path}: its {what} is {theirs!r}, the student's {mine!r}; "
                    f"a teacher must predict what the student predicts (use the --init "
                    f"checkpoint, or set {what} to match)")
        from stemseg_core.model import build_model

        self.model = build_model(cfg).to(device)
        self.model.load_state_dict(payload["model"])
        # Train mode like the student: BatchNorm on batch statistics (eval-mode statistics
        # differ from a training batch's by more than a camera's artefacts do); frozen weights.
        self.model.train().requires_grad_(False)
        self.path = Path(path)
        log.info("teacher %s (sha256 %s…) for loss.distill", path, payload["file_sha256"][:12])

    @torch.no_grad()
    def annotate(self, targets: list[dict[str, Any]]) -> None:
        """Replace each target's ``clean_images`` (T, 3, H, W) by ``teacher``: the teacher's
        outputs for that clip ({"embeddings" (E, T, h, w), "precisions", "raw_variance",
        "seediness" (T, h, w)[, "semantic" (C, T, h, w)]})."""
        if any("clean_images" not in t for t in targets):
            raise TrainingError("loss.distill needs the clips without camera effects "
                               "(clean_images): build the data set with the same config")
        clean = torch.stack([t.pop("clean_images") for t in targets])
        out = self.model.predict(clean)
        for i, t in enumerate(targets):
            t["teacher"] = {k: out[k][i] for k in TEACHER_OUTPUTS if k in out}
