"""``inductor``: the two graphs compiled by ``torch.compile`` (TorchInductor), CPU or CUDA.

Nothing has to be installed beyond torch: Triton kernels on CUDA (Triton ships with torch's
CUDA wheels), C++/OpenMP kernels on the CPU (needs a C++ compiler). fp32 on the CPU; fp32,
fp16 and bf16 on CUDA, the half precisions under autocast (AMP) as in the ``torch`` backend, so
the mixing (coordinates, exp of the variance) stays fp32.

Each graph is compiled for fixed shapes (``dynamic=False``): the decoder once per clip length,
the encoder once per batch size. The encoder's batches are padded with copies of a frame up to
the next power of two (at most T): a stream runs batches of T (first clip) and T - Tc (the new
frames of each later clip), and a warm-up of every length (``prepare_encoder(1..T)``) compiles
log2(T) + 1 graphs instead of T. ``prepare``/``prepare_encoder``/``prepare_decoder`` compile
ahead (a compile mid-stream would stall the tracker); a shape first seen later compiles then.

Mode: ``max-autotune-no-cudagraphs`` on CUDA (Triton templates for matmuls/convolutions, tuned
on the GPU; minutes for the full model), ``default`` on the CPU (compiles in seconds to a
minute on 2 cores); the environment variable STEMSEG_INDUCTOR_MODE picks another of
``torch.compile``'s modes. The CUDA-graph modes (``reduce-overhead``, ``max-autotune``) copy
their outputs, as a graph's next replay overwrites them and the runner keeps features across
clips. The weights are frozen into the graphs (inductor ``freezing``: constant folding,
pre-packed weights on the CPU); a backend serves one set of weights.

Compiled kernels are cached by torch itself (FX graph and autotuning caches under
TORCHINDUCTOR_CACHE_DIR, default /tmp/torchinductor_<user>): a second start reuses them. Point
TORCHINDUCTOR_CACHE_DIR at a lasting folder on a robot. If a graph fails to compile, the backend
logs a warning with the reason and runs that graph eagerly from then on (``fallbacks``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable

import numpy as np

from stemseg_core.backends.base import Backend, Features, register
from stemseg_core.backends.lazy_torch import torch
from stemseg_core.backends.torch_backend import to_device, to_numpy

log = logging.getLogger(__name__)

#: torch.compile's modes (torch._inductor.list_mode_options).
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: The mode on each device type unless STEMSEG_INDUCTOR_MODE names another.
DEFAULT_MODES = {"cuda": "max-autotune-no-cudagraphs", "cpu": "default"}
MODE_ENV = "STEMSEG_INDUCTOR_MODE"
#: Compiled variants dynamo keeps per graph (torch's default is 8; T=8 needs up to 8 decoder
#: lengths, more for longer clips).
RECOMPILE_LIMIT = 64


def inductor_mode(device_type: str) -> str:
    """The torch.compile mode for ``device_type``: STEMSEG_INDUCTOR_MODE, else DEFAULT_MODES."""
    mode = os.environ.get(MODE_ENV, "").strip() or DEFAULT_MODES.get(device_type, "default")
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}={mode!r} is not a torch.compile mode; use one of "
                         f"{', '.join(MODES)} (or unset it: {DEFAULT_MODES})")
    return mode


def batch_bucket(n: int, clip_length: int) -> int:
    """Frames per encoder call for ``n`` new frames: the next power of two, at most
    ``clip_length`` (``n`` itself when it is more)."""
    if n >= clip_length:
        return n
    size = 1
    while size < n:
        size *= 2
    return min(size, clip_length)


def _cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


@register
class InductorBackend(Backend):
    name = "inductor"
    precisions = {"cpu": ("fp32",), "cuda": ("fp32", "fp16", "bf16")}

    _AMP = {"fp16": "float16", "bf16": "bfloat16"}  # torch dtype names

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mode = inductor_mode(self.device.type)
        #: graph part ("encoder"/"decoder") -> why it runs eagerly (its compile failed)
        self.fallbacks: dict[str, str] = {}
        #: (part, size) -> seconds its first call (the compile) took
        self.compile_seconds: dict[tuple[str, int], float] = {}
        self._compiled: dict[str, Callable] = {}
        self._clone_outputs = self.mode in ("reduce-overhead", "max-autotune")

    @classmethod
    def unavailable_reason(cls, device: torch.device) -> str | None:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not run on this Python/torch (use backend torch)"
        if device.type == "cuda":
            if not torch.cuda.is_available():
                return "CUDA is not available (use backend openvino/onnxruntime/torch on a CPU)"
            from torch.utils._triton import has_triton

            try:
                triton = has_triton()  # also checks the GPU's compute capability
            except Exception as e:
                return f"Triton cannot be checked on this GPU ({type(e).__name__}: {e})"
            if not triton:
                return ("torch.compile on CUDA needs Triton, which torch's CUDA wheels bring "
                        "(pip install the triton version your torch names)")
            return None
        if device.type == "cpu":
            if _cxx_compiler() is None:
                return ("torch.compile on the CPU needs a C++ compiler (apt-get install g++, or "
                        "set CXX)")
            return None
        return f"inductor runs on cpu and cuda, not {device.type}"

    @classmethod
    def version(cls) -> str:
        return f"torch {torch.__version__} inductor"

    # -- compiling ---------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self._AMP[self.precision]))

    def _options(self) -> dict:
        options = dict(torch._inductor.list_mode_options(self.mode))
        options["freezing"] = True
        return options

    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        if self.num_threads and self.device.type == "cpu":
            torch.set_num_threads(self.num_threads)  # before compiling: kernels keep the count
        import torch._dynamo.config as dynamo_config

        for name in ("recompile_limit", "cache_size_limit"):  # one of them, by torch version
            if getattr(dynamo_config, name, RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
                setattr(dynamo_config, name, RECOMPILE_LIMIT)
        self._frame_shape = tuple(int(s) for s in frame_shape)
        self._clip_length = int(clip_length)
        self.max_batch = self._clip_length  # the buckets compiled at warm-up (batch_bucket)
        self._ready: set[tuple[str, int]] = set()
        options = self._options()
        for part, module in (("encoder", self.encoder), ("decoder", self.decoder)):
            self._compiled[part] = torch.compile(module, dynamic=False, options=options)
        log.info("inductor %s on %s: mode %s, encoder batches padded to %s", self.precision,
                 self.device, self.mode, sorted({batch_bucket(n, self._clip_length)
                                                 for n in range(1, self._clip_length + 1)}))
        self.prepare_encoder(self._clip_length)
        self.prepare_decoder(self._clip_length)

    def _random_frames(self, n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(n)
        with torch.inference_mode():
            return (torch.rand(n, *self._frame_shape, generator=g) * 255).to(self.device)

    def prepare_encoder(self, n: int) -> None:
        size = batch_bucket(int(n), self._clip_length)
        if ("encoder", size) not in self._ready:
            self._call("encoder", size, self._random_frames(size))

    def prepare_decoder(self, length: int) -> None:
        length = int(length)
        if ("decoder", length) not in self._ready:
            with torch.inference_mode(), self._autocast():
                feats = self.encoder(self._random_frames(length))
            self._call("decoder", length, *(f.contiguous() for f in feats))

    def _call(self, part: str, size: int, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The compiled ``part`` on ``args`` (compiling it for this ``size`` on first use);
        the eager graph where its compile failed."""
        eager = self.encoder if part == "encoder" else self.decoder
        if part in self.fallbacks:
            with torch.inference_mode(), self._autocast():
                return eager(*args)
        first = (part, size) not in self._ready
        t0 = time.perf_counter()
        try:
            with torch.inference_mode(), self._autocast():
                # Dynamo's guards tell inference tensors (the tracker's, made under
                # inference_mode) from others: one kind only, or each graph compiles twice.
                args = tuple(a if a.is_inference() else a.clone() for a in args)
                out = self._compiled[part](*args)
        except Exception as e:
            if not first:
                raise  # a graph that ran before: a runtime error (memory, ...), not a compile
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
            self.fallbacks[part] = reason
            log.warning("inductor: compiling the %s (%s %d) failed (%s); running it eagerly "
                        "from now on, at eager torch speed (inference.backend=torch says so "
                        "without compiling)", part, "frames" if part == "encoder" else
                        "clip length", size, reason[:500])
            with torch.inference_mode(), self._autocast():
                return eager(*args)
        if first:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - t0
            self.compile_seconds[(part, size)] = seconds
            self._ready.add((part, size))
            log.info("inductor %s %s compiled for %s %d in %.1f s", part, self.precision,
                     "batch" if part == "encoder" else "clip length", size, seconds)
        if self._clone_outputs:
            out = tuple(t.clone() for t in out)
        return out

    # -- running -----------------------------------------------------------------------------
    def encode(self, frames: np.ndarray) -> Features:
        n = int(frames.shape[0])
        size = batch_bucket(n, self._clip_length)
        if size > n:  # pad with copies of the first frame (their features are dropped)
            frames = np.concatenate([frames, np.repeat(frames[:1], size - n, axis=0)])
        with torch.inference_mode():
            out = self._call("encoder", size, to_device(frames, self.device))
            return to_numpy(tuple(t[:n] for t in out) if size > n else tuple(out))

    def decode(self, feats: Features) -> dict[str, np.ndarray]:
        length = int(feats[0].shape[0])
        with torch.inference_mode():
            out = self._call("decoder", length, *(to_device(f, self.device) for f in feats))
            return self.decoder.as_dict(to_numpy(tuple(out)))


__all__ = ["DEFAULT_MODES", "MODES", "InductorBackend", "batch_bucket", "inductor_mode"]
