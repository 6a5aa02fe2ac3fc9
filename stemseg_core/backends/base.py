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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stemseg_core.backends.artifact_key import (
    DeviceSpec,
    config_hash,
    device_description,
    weights_hash,
)
from stemseg_core.backends.cache import GRAPH_VERSION, ArtifactCache
from stemseg_core.backends.network import NetworkSource
from stemseg_core.config.schema import PRECISIONS
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


class ArtifactMissing(BackendUnavailable):
    """A graph is not in the engine cache and this process cannot build it (no torch model);
    the message names the command that builds it."""


class Backend(ABC):
    """Runs the frame encoder and the clip decoder of one model on one runtime.

    Subclasses set ``name`` and ``precisions`` (by device type) and implement ``_prepare``,
    ``encode`` and ``decode``. ``min_batch``: frames are encoded at least this many at once
    (padded with copies), see torch_backend.py; ``max_batch``: at most this many (None: any),
    for backends that compile a graph per frame count and prepare counts up to T only (a
    larger batch, several cameras' frames, would compile one mid-stream).
    """

    name: ClassVar[str]
    #: device type ("cpu", "cuda") -> precisions this backend runs there.
    precisions: ClassVar[dict[str, tuple[str, ...]]]
    #: whether it runs the torch model itself (torch, inductor, tensorrt); the others run the
    #: exported graphs and can load them from the cache without torch (a NetworkSource with no
    #: module).
    needs_model: ClassVar[bool] = True
    min_batch: int = 1
    max_batch: int | None = None

    def __init__(self, model: Any, device: Any, precision: str = "fp32", *,
                 cache: ArtifactCache | None = None, num_threads: int = 0) -> None:
        """``model``: a torch model or a :class:`NetworkSource`; ``device``: a string, a
        DeviceSpec or a ``torch.device`` (kept as given when it is one)."""
        spec = DeviceSpec.of(device)
        allowed = self.precisions.get(spec.type, ())
        if precision not in allowed:
            raise BackendUnavailable(
                f"backend '{self.name}' does not run precision '{precision}' on {spec.type}; "
                f"allowed there: {', '.join(allowed) or 'none'} (set inference.precision)")
        reason = self.unavailable_reason(spec)
        if reason:
            raise BackendUnavailable(f"backend '{self.name}': {reason}")
        source = model if isinstance(model, NetworkSource) else None
        module = source.module if source is not None else model
        if module is None and self.needs_model:
            raise BackendUnavailable(
                f"backend '{self.name}' runs the torch model, and none is loaded (a runtime "
                f"from the engine cache); use backend openvino or onnxruntime, or load the "
                f"checkpoint with torch installed")
        if module is not None:  # torch is loaded: the device as torch names it
            import torch

            device = device if isinstance(device, torch.device) else torch.device(str(spec))
        else:
            device = spec
        self.model = module.eval() if module is not None else None
        self.source = source
        self.device = device
        self.precision = precision
        self.cache = cache or ArtifactCache()
        self.num_threads = int(num_threads)
        self.cfg = source.cfg if source is not None else module.cfg
        self._weights: str | None = source.weights if source is not None else None
        self._torch: str | None = source.torch_version if source is not None else None
        #: names of the encoder's outputs / the decoder's outputs (export/split.py); from the
        #: model, or from the loaded graphs where there is none (set by ``prepare``)
        self.feature_names: tuple[str, ...] | None = None
        self.output_names: tuple[str, ...] | None = None
        if self.model is not None:
            from stemseg_core.export.split import ClipDecoder, FrameEncoder

            self.encoder = FrameEncoder(self.model).eval()
            self.decoder = ClipDecoder(self.model).eval()
            self.feature_names, self.output_names = self.encoder.names, self.decoder.names

    @property
    def torch_version(self) -> str:
        """The torch version of the graphs' export: this process's, or the index's where no
        model is loaded (a key part: the ONNX exporter is torch's)."""
        if self._torch is None:
            import torch

            self._torch = torch.__version__
        return self._torch

    # -- what each backend provides ------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, device: Any) -> str | None:
        """None if the backend can run on ``device`` (``type``, ``index``) here, else why not
        (with the fix)."""
        return None

    @classmethod
    def version(cls) -> str:
        """The runtime's version (part of the artifact key)."""
        import torch

        return torch.__version__

    @abstractmethod
    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        """Build or load what (3, Hp, Wp) frames and clips of ``clip_length`` frames need."""

    def build_artifacts(self, frame_shape: tuple[int, int, int], lengths: list[int]) -> None:
        """Build (or load) into the cache every graph for frames of ``frame_shape`` and clips
        of ``lengths`` frames: what `stemseg export` prebuilds for a deployment. Backends whose
        graphs are files override it to build without compiling."""
        self.prepare(frame_shape, max(lengths))
        for n in lengths:
            self.prepare_decoder(n)

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
    def artifact(self, key: dict[str, Any], build: Callable[[Path], None],
                 load: Callable[[Path], Any]) -> Any:
        """The artifact of ``key`` loaded from the cache; where absent, built from the torch
        model (``build(folder)``) or, without one, by ``source.build_missing``, else
        ArtifactMissing naming the command that builds it."""
        if self.model is not None:
            return self.cache.get_or_build(key, build, load)[0]
        found = self.cache.get(key, load)
        if found is not None:
            return found
        shape = tuple(int(s) for s in str(key["shape"]).split("x"))
        if self.source is None or self.source.build_missing is None:
            raise ArtifactMissing(self._missing_message(key, shape))
        log.info("%s %s for %s is not in the engine cache %s: building it in a process with "
                 "torch", self.name, key["part"], key["shape"], self.cache.root)
        self.source.build_missing(self, shape)
        found = self.cache.get(key, load)
        if found is None:
            raise ArtifactMissing(self._missing_message(key, shape, tried=True))
        return found

    def _missing_message(self, key: dict[str, Any], shape: tuple[int, ...],
                         tried: bool = False) -> str:
        ckpt = (self.source.checkpoint if self.source else None) or "CKPT"
        h, w = (shape[-2], shape[-1]) if len(shape) >= 2 else ("H", "W")
        why = ("the build in a process with torch did not write it (see its log above)" if tried
               else "this process has no torch model to build it from")
        return (f"{self.name}: the {key['part']} graph for model input {h}x{w} is not in the "
                f"engine cache {self.cache.root} (torch {key.get('torch')}), and {why}. Build "
                f"every graph this deployment needs on a machine with torch and this stemseg: "
                f"`stemseg export --checkpoint {ckpt} --format {self.name} --height {h} "
                f"--width {w} --clip-length {self.cfg.model.clip_length} --engine-cache-dir "
                f"{self.cache.root}` (plus the --set model/input overrides you run with), and "
                f"copy that folder here")

    # -- helpers for subclasses ------------------------------------------------------------------
    def artifact_key(self, part: str, shape: tuple[int, ...], **extra: Any) -> dict[str, Any]:
        """The cache key of one graph: everything that makes a built artifact invalid."""
        if self._weights is None:
            self._weights = weights_hash(self.model)
        key = {"backend": self.name, "version": self.version(), "part": part,
               "device": device_description(self.device), "precision": self.precision,
               "shape": "x".join(str(int(s)) for s in shape), "weights": self._weights,
               "model_config": config_hash(self.cfg.to_dict()["model"]),
               "graph_version": GRAPH_VERSION, "torch": self.torch_version}
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


def resolve_auto(device: Any, precision: str) -> str:
    """The first backend of AUTO_ORDER that is installed and runs ``precision`` on ``device``
    (a string, DeviceSpec or torch.device)."""
    device = DeviceSpec.of(device)
    for name in AUTO_ORDER.get(device.type, ("torch",)):
        cls = BACKENDS.get(name)
        if precision in cls.precisions.get(device.type, ()) and \
                cls.unavailable_reason(device) is None:
            return name
    raise BackendUnavailable(f"no installed backend runs precision '{precision}' on "
                             f"{device.type}; try inference.precision=fp32")


def deployment_default(device: Any) -> tuple[str, str]:
    """DEPLOYMENT_DEFAULTS for ``device`` (a string, DeviceSpec or torch.device), or eager fp32
    when that backend is not installed."""
    device = DeviceSpec.of(device)
    name, precision = DEPLOYMENT_DEFAULTS.get(device.type, ("torch", "fp32"))
    reason = BACKENDS.get(name).unavailable_reason(device)
    if reason is not None:
        log.warning("the %s default %s %s is not available (%s); running torch fp32",
                    device.type, name, precision, reason)
        return "torch", "fp32"
    return name, precision


def create_backend(name: str, model: Any, device: Any, precision: str = "fp32",
                   *, cache: ArtifactCache | None = None, num_threads: int = 0) -> Backend:
    """The backend ``name`` (or ``auto``) for ``model`` (a torch model or a NetworkSource) on
    ``device``."""
    if precision not in PRECISIONS:
        raise BackendUnavailable(f"unknown precision '{precision}'; allowed: "
                                 f"{', '.join(PRECISIONS)}")
    if name == "auto":
        name = resolve_auto(device, precision)
        log.info("inference.backend auto -> %s (%s, %s)", name, device.type, precision)
    return backend_class(name)(model, device, precision, cache=cache, num_threads=num_threads)

