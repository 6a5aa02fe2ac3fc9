"""The error of training, in its own module so that the trainer's helpers can raise it."""
from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why and what to do."""
