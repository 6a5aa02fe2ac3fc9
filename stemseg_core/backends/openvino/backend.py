"""``openvino``: the two graphs as OpenVINO IR on an Intel CPU.

Precision is OpenVINO's inference precision hint: fp32 (``f32``: exact up to kernel rounding),
bf16 (OpenVINO's own default on CPUs with AVX-512 BF16/AMX; judge it by HOTA), fp16. int8 runs
the NNCF-quantized IR that `stemseg export --format openvino --precision int8 --calibration
DATA` puts into the cache (int8.py); without it int8 is an error naming that command.
The encoder IR keeps a dynamic frame count and is compiled once, with it, for every count (a
stream meets two: T, then T - T_c). The decoder of full clips (T frames) is compiled once; a
shorter clip's (a flush, at a stream's end or break: L = 1..T-1) is compiled when it runs and
freed after it. Held, each took 31-44 MiB once compiled and ~135 MiB once run (demo model,
192x640); the rare flush pays the compile instead (0.5-0.8 s on 2 cores; docs/experiments.md).
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from stemseg_core.backends.base import Backend, BackendUnavailable, Features, register
from stemseg_core.backends.onnx_files import decoder_onnx, encoder_onnx

#: inference.precision -> OpenVINO INFERENCE_PRECISION_HINT (int8 runs quantized IR in f32
#: elsewhere: the unquantized layers keep fp32).
log = logging.getLogger(__name__)

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
XML = "model.xml"


def ir_key(backend: Backend, part: str, shape: tuple[int, ...]) -> dict:
    """Cache key of an IR (fp32 IR for fp32/bf16/fp16; the int8 IR has its own). The fp32 IR
    is a converted graph, the same on any CPU (kernels are picked when it is compiled), so its
    key names no CPU: a cache built on one machine serves a runtime on another."""
    key = backend.artifact_key(part, shape)
    if backend.precision != "int8":  # one fp32 IR serves every hint; the hint acts at compile
        key["precision"] = "fp32"
        key["device"] = "cpu"
    return key


def int8_missing(part: str, shape: str) -> str:
    """The error for a quantized graph that is not in the cache: how to build it."""
    return (f"openvino int8: no quantized {part} in the cache for this model, size {shape} and "
            f"device; build it with `stemseg export --format openvino --precision int8 "
            f"--calibration DATA --checkpoint CKPT` (same --height/--width/--clip-length and "
            f"engine cache dir)")


@functools.cache
def shared_core():
    """The process's one ``openvino.Core``. A Core per backend left ~1.3 MiB behind per
    configure/cleanup cycle of the node (+62 MiB over the soak's 50 cycles); one shared Core
    kept RSS flat (measured 2026-12-05). Its thread pool stays, so the thread count is steady."""
    import openvino as ov

    return ov.Core()


def runs_bf16_natively() -> bool:
    """Whether this CPU runs OpenVINO's bf16 hint in bf16 (AVX-512 BF16 or AMX). Elsewhere
    OpenVINO quietly runs the bf16 hint in f32, so results, and HOTA with them, are those of
    fp32 (measured on an AMD EPYC without bf16, 2026-12-08: the held-out drives' figures moved
    by up to 1.3 HOTA against a bf16 CPU)."""
    return "BF16" in shared_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@functools.cache
def _note_bf16_support() -> None:
    """Say once per process when the bf16 asked for runs as f32 on this CPU."""
    if not runs_bf16_natively():
        log.info("openvino bf16: this CPU has no native bf16 (AVX-512 BF16/AMX); OpenVINO runs "
                 "the model in f32 (same outputs as precision fp32)")


@register
class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = {"cpu": ("fp32", "bf16", "fp16", "int8")}
    needs_model = False

    @classmethod
    def unavailable_reason(cls, device: Any) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed (pip install openvino)"
        return None

    @classmethod
    def version(cls) -> str:
        import openvino as ov

        return ov.__version__

    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        self._load_encoder_ir(frame_shape)
        self._encoders: dict[int, object] = {}
        self._decoders: dict[int, object] = {}
        self._clip_length = int(clip_length)
        if self._encoder_model.inputs[0].get_partial_shape()[0].is_static:
            self.max_batch = self._clip_length  # one compile per count: counts 1..T prepared
        self._decoder_for(clip_length)

    def build_artifacts(self, frame_shape: tuple[int, int, int], lengths: list[int]) -> None:
        """Build or load the IR of the encoder and of the decoders of ``lengths`` (no
        compiling: `stemseg export`, a build for a process without torch)."""
        self._load_encoder_ir(frame_shape)
        for n in lengths:
            self.decoder_ir(n)

    def _load_encoder_ir(self, frame_shape: tuple[int, int, int]) -> None:
        self._core = shared_core()
        self._frame_shape = tuple(frame_shape)
        self._encoder_model = self._ir("encoder", self._frame_shape,
                                       lambda: encoder_onnx(self, self._frame_shape))
        if self.feature_names is None:  # no torch model: the graph's own names
            self.feature_names = tuple(o.get_any_name() for o in self._encoder_model.outputs)

    # -- IR artifacts ----------------------------------------------------------------------------
    def encoder_ir(self) -> object:
        """The encoder's IR (``openvino.Model``, dynamic frame count) after :meth:`prepare`."""
        return self._encoder_model

    def decoder_ir(self, length: int) -> object:
        """The IR of the decoder for clips of ``length`` frames (built or loaded)."""
        model = self._ir(f"decoder-L{length}", self._frame_shape,
                         lambda: decoder_onnx(self, self._frame_shape, length))
        if self.output_names is None:
            self.output_names = tuple(o.get_any_name() for o in model.outputs)
        return model

    def _ir(self, part: str, shape: tuple[int, ...], onnx_path) -> object:
        import openvino as ov

        key = ir_key(self, part, shape)

        def build(folder: Path) -> None:
            if self.precision == "int8":
                raise BackendUnavailable(int8_missing(part, key["shape"]))
            ov.save_model(ov.convert_model(str(onnx_path())), str(folder / XML),
                          compress_to_fp16=False)

        return self.artifact(key, build, lambda d: self._core.read_model(str(d / XML)))

    def _compile(self, model) -> object:
        if self.precision == "bf16":
            _note_bf16_support()
        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.precision],
                  "PERFORMANCE_HINT": "LATENCY"}
        if self.num_threads:
            config["INFERENCE_NUM_THREADS"] = self.num_threads
        return self._core.compile_model(model, "CPU", config)

    def prepare_decoder(self, length: int) -> None:
        """Compile the decoder of full clips; of a shorter clip only build or find its IR (it
        is compiled when a flush runs it; see the module doc)."""
        if length == self._clip_length:
            self._decoder_for(length)
        else:
            self.decoder_ir(length)

    def prepare_encoder(self, n: int) -> None:
        self._encoder_for(n)

    def _decoder_for(self, length: int):
        if length not in self._decoders:
            self._decoders[length] = self._compile(self.decoder_ir(length))
        return self._decoders[length]

    def _encoder_for(self, n: int):
        """The compiled encoder for ``n`` frames: the IR as it is, with its dynamic frame
        count, compiled once for every n (one compile per count held ~120 MiB more for counts
        1..4 of the demo model at 192x640, at the same speed for the T - T_c new frames of a
        stream's clips; measured 2026-12-06). An IR with a fixed count is reshaped per n."""
        if n not in self._encoders:
            model = self._encoder_model
            if model.inputs[0].get_partial_shape()[0].is_static:
                model = model.clone()
                model.reshape({model.inputs[0].get_any_name(): [n, *self._frame_shape]})
                self._encoders[n] = self._compile(model)
            else:
                shared = next(iter(self._encoders.values()), None)
                self._encoders[n] = shared if shared is not None else self._compile(model)
        return self._encoders[n]

    # -- running ---------------------------------------------------------------------------------
    def _run(self, compiled, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """numpy float32 in and out; the outputs are copied (OpenVINO reuses its buffers)."""
        result = compiled([np.ascontiguousarray(a, np.float32) for a in inputs])
        return [np.array(result[out], dtype=np.float32) for out in compiled.outputs]

    def encode(self, frames: np.ndarray) -> Features:
        return tuple(self._run(self._encoder_for(int(frames.shape[0])), [frames]))

    def decode(self, feats: Features) -> dict[str, np.ndarray]:
        n = int(feats[0].shape[0])
        if n == self._clip_length:
            return dict(zip(self.output_names, self._run(self._decoder_for(n), list(feats))))
        t0 = time.perf_counter()
        compiled = self._compile(self.decoder_ir(n))  # a flush: freed on return
        log.debug("openvino: compiled the decoder of %d-frame clips in %.2f s", n,
                  time.perf_counter() - t0)
        return dict(zip(self.output_names, self._run(compiled, list(feats))))
