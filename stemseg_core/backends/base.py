"""The backend interface: what runs the network's two graphs (export/split.py) for the tracker.

A backend implements ``encode(frames)`` (per-frame features) and ``decode(features)`` (one clip's
outputs) on its runtime, numpy float32 in and out (a torch-based backend converts at this
boundary, moving to and from its device); ``runner.NetworkRunner`` caches the per-frame
features across overlapping clips and gives the tracker ``clip -> outputs``
(``StreamingTracker._forward``).
Backends register by name (``@register``, into ``stemseg_core.registry.BACKENDS``: a new
backend is one new module in this package, or a plugin module, see registry.py);
``create_backend`` picks one (``auto``: the fastest installed for the device, in ``AUTO_ORDER``).
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from stemseg_core.backends.artifact_key import config_hash, device_description, weights_hash
from stemseg_core.backends.cache import GRAPH_VERSION, ArtifactCache
from stemseg_core.config.schema import PRECISIONS
from stemseg_core.export.split import ClipDecoder, FrameEncoder
from stemseg_core.registry import BACKENDS

log = logging.getLogger(__name__)

#: Per-frame features: numpy float32 arrays, each (N, ...).
Features = tuple[np.ndarray, ...]

#: ``auto``: the first of these that is installed and runs on the device (fastest first, as
#: measured by `stemseg bench --backend ...`).
AUTO_ORDER = {"cuda": ("tensorrt", "inductor", "torch"),
              "cpu": ("openvino", "onnxruntime", "torch")}
#: (backend, precision) a deployment (the node) runs on each device type unless told otherwise:
#: the fastest setting whose HOTA was within 0.5 of eager fp32 on the demo model (README,
#: Deployment; int8 is faster still but needs the user's calibration data). CUDA stays eager
#: fp32 until TensorRT has been measured on a GPU.
DEPLOYMENT_DEFAULTS = {"cpu": ("openvino", "bf16"), "cuda": ("torch", "fp32")}


class BackendUnavailable(RuntimeError):
    """The backend is not installed, or does not run on this device or precision."""


class Backend(ABC):
    """Runs the frame encoder and the clip decoder of one model on one runtime.

    Subclasses set ``name`` and ``precisions`` (by device type) and implement ``_prepare``,
    ``encode`` and ``decode``. ``min_batch``: frames are encoded at least this many at once
    (padded with copies), see torch_backend.py.
    """

    name: ClassVar[str]
    #: device type ("cpu", "cuda") -> precisions this backend runs there.
    precisions: ClassVar[dict[str, tuple[str, ...]]]
    min_batch: int = 1

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32", *,
                 cache: ArtifactCache | None = None, num_threads: int = 0) -> None:
        allowed = self.precisions.get(device.type, ())
        if precision not in allowed:
            raise BackendUnavailable(
                f"backend '{self.name}' does not run precision '{precision}' on {device.type}; "
                f"allowed there: {', '.join(allowed) or 'none'} (set inference.precision)")
        reason = self.unavailable_reason(device)
        if reason:
            raise BackendUnavailable(f"backend '{self.name}': {reason}")
        self.model = model.eval()
        self.device = device
        self.precision = precision
        self.cache = cache or ArtifactCache()
        self.num_threads = int(num_threads)
        self.encoder = FrameEncoder(self.model).eval()
        self.decoder = ClipDecoder(self.model).eval()
        self._weights: str | None = None

    # -- what each backend provides ------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, device: torch.device) -> str | None:
        """None if the backend can run on ``device`` here, else why not (with the fix)."""
        return None

    @classmethod
    def version(cls) -> str:
        """The runtime's version (part of the artifact key)."""
        return torch.__version__

    @abstractmethod
    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        """Build or load what (3, Hp, Wp) frames and clips of ``clip_length`` frames need."""

    def prepare_decoder(self, length: int) -> None:
        """Build or load the decoder for clips of ``length`` frames now (a stream's last clip
        may be shorter than T); backends with one graph per length override it."""
        return None

    def prepare_encoder(self, n: int) -> None:
        """Build or load the encoder for batches of ``n`` frames now; backends that compile one
        graph per frame count override it."""
        return None

    @abstractmethod
    def encode(self, frames: np.ndarray) -> Features:
        """(N, 3, Hp, Wp) float32 0..255 (numpy) -> features: numpy float32 arrays, each
        (N, ...)."""

    @abstractmethod
    def decode(self, feats: Features) -> dict[str, np.ndarray]:
        """One clip's features (numpy float32, each (L, ...)) -> the model's output dict
        (numpy float32, batch 1)."""

    # -- helpers for subclasses ------------------------------------------------------------------
    def artifact_key(self, part: str, shape: tuple[int, ...], **extra: Any) -> dict[str, Any]:
        """The cache key of one graph: everything that makes a built artifact invalid."""
        if self._weights is None:
            self._weights = weights_hash(self.model)
        key = {"backend": self.name, "version": self.version(), "part": part,
               "device": device_description(self.device), "precision": self.precision,
               "shape": "x".join(str(int(s)) for s in shape), "weights": self._weights,
               "model_config": config_hash(self.model.cfg.to_dict()["model"]),
               "graph_version": GRAPH_VERSION, "torch": torch.__version__}
        key.update({k: str(v) for k, v in extra.items()})
        return key


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available by its ``name``."""
    return BACKENDS.register(cls.name)(cls)


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend '{name}'; allowed: auto, "
                                 f"{', '.join(BACKENDS.names())}")
    return BACKENDS.get(name)


def registered() -> dict[str, type[Backend]]:
    return dict(BACKENDS)


def resolve_auto(device: torch.device, precision: str) -> str:
    """The first backend of AUTO_ORDER that is installed and runs ``precision`` on ``device``."""
    for name in AUTO_ORDER.get(device.type, ("torch",)):
        cls = BACKENDS.get(name)
        if precision in cls.precisions.get(device.type, ()) and \
                cls.unavailable_reason(device) is None:
            return name
    raise BackendUnavailable(f"no installed backend runs precision '{precision}' on "
                             f"{device.type}; try inference.precision=fp32")


def deployment_default(device: torch.device) -> tuple[str, str]:
    """DEPLOYMENT_DEFAULTS for ``device``, or eager fp32 when that backend is not installed."""
    name, precision = DEPLOYMENT_DEFAULTS.get(device.type, ("torch", "fp32"))
    reason = BACKENDS.get(name).unavailable_reason(device)
    if reason is not None:
        log.warning("the %s default %s %s is not available (%s); running torch fp32",
                    device.type, name, precision, reason)
        return "torch", "fp32"
    return name, precision


def create_backend(name: str, model: nn.Module, device: torch.device, precision: str = "fp32",
                   *, cache: ArtifactCache | None = None, num_threads: int = 0) -> Backend:
    """The backend ``name`` (or ``auto``) for ``model`` on ``device``."""
    if precision not in PRECISIONS:
        raise BackendUnavailable(f"unknown precision '{precision}'; allowed: "
                                 f"{', '.join(PRECISIONS)}")
    if name == "auto":
        name = resolve_auto(device, precision)
        log.info("inference.backend auto -> %s (%s, %s)", name, device.type, precision)
    return backend_class(name)(model, device, precision, cache=cache, num_threads=num_threads)

