"""``tensorrt``: TensorRT engines built with torch-tensorrt, on NVIDIA GPUs (fp16, fp32).

Each graph is exported with ``torch.export`` and compiled whole into one serialized TensorRT
engine (``convert_exported_program_to_serialized_trt_engine``); the engine bytes and its binding
names (``bindings.json``) are the cached artifact (cache.py keys them by GPU model, TensorRT and
torch-tensorrt versions, weights, size, T, precision) and run with TensorRT's own runtime, in and
out of torch tensors (no copies through the host, nothing unpickled).

- Precision is the model's own dtypes (torch-tensorrt >= 2.13 types every layer explicitly; its
  old ``enabled_precisions`` / ``use_explicit_typing`` are gone and would be ignored): fp16
  builds the graphs from a half-precision copy of the model; the mixing (coordinates, exp of
  the variance) stays fp32, as in the eager model. fp32 means fp32 (``disable_tf32``).
- Inputs and outputs are bound by name, never by position (TensorRT documents no order of its
  I/O tensors, and the embeddings and precisions have the same shape, so a swap would pass
  unnoticed): our names where torch-tensorrt takes them (``arg_input_binding_names`` /
  ``output_binding_names``), else its documented defaults (the exported program's input names,
  ``output0``, ``output1``, ... in return order), written next to the engine and checked
  against the engine's own names when it loads.
- Engines run on a CUDA stream of their own (``enqueueV3`` on the legacy default stream adds
  synchronisations), ordered after the caller's stream and before it again, on the backend's
  device (``cuda:1`` builds and runs there).
- Engines are built outside ``torch.inference_mode()`` (the tracker runs clips inside it; a
  known trouble spot of ``torch.export``) under ``torch.no_grad()``.

The encoder engine takes one frame (a clip's new frames run one after another), so one engine
serves clips and their overlap alike.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging

import numpy as np

from stemseg_core.backends.base import Backend, Features, register
from stemseg_core.backends.lazy_torch import torch
from stemseg_core.backends.torch_backend import to_device, to_numpy

log = logging.getLogger(__name__)

ENGINE = "model.engine"
BINDINGS = "bindings.json"
_DTYPES = {"fp16": "float16", "fp32": "float32"}  # torch dtype names


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.bool: torch.bool, trt.int8: torch.int8}
    for name, td in (("bfloat16", torch.bfloat16), ("int64", torch.int64)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = td
    return table[dtype]


class EngineRunner:
    """A deserialized engine run on torch tensors, its I/O bound by name.

    ``inputs`` / ``outputs``: the engine's binding names in the order of the graph's arguments
    and results (bindings.json); they must be exactly the engine's own I/O tensor names."""

    def __init__(self, engine_bytes: bytes, inputs: list[str], outputs: list[str],
                 device: torch.device) -> None:
        import tensorrt as trt

        self._trt = trt
        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(device):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
            if self.engine is None:
                raise RuntimeError("TensorRT could not deserialize the engine")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise RuntimeError("TensorRT could not create an execution context")
            self.stream = torch.cuda.Stream(device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        have_in = {n for n in names if self.engine.get_tensor_mode(n) == mode}
        have_out = set(names) - have_in
        if set(inputs) != have_in or set(outputs) != have_out or \
                len(inputs) + len(outputs) != len(names):
            raise RuntimeError(
                f"engine bindings {sorted(have_in)} -> {sorted(have_out)} differ from "
                f"{BINDINGS}: {inputs} -> {outputs}")
        self.inputs, self.outputs = list(inputs), list(outputs)

    def __call__(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        if len(tensors) != len(self.inputs):
            raise ValueError(f"engine takes {len(self.inputs)} inputs, got {len(tensors)}")
        ctx = self.context
        keep = []
        for name, t in zip(self.inputs, tensors):
            want = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
            t = t.to(self.device, want).contiguous()
            keep.append(t)
            if not ctx.set_input_shape(name, tuple(t.shape)):
                raise RuntimeError(
                    f"TensorRT refused input '{name}' of shape {tuple(t.shape)}; the engine "
                    f"was built for {tuple(self.engine.get_tensor_shape(name))}")
            if not ctx.set_tensor_address(name, t.data_ptr()):
                raise RuntimeError(f"TensorRT refused the address of input '{name}'")
        outs = []
        for name in self.outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"TensorRT could not infer the shape of output '{name}' "
                                   f"({shape}) from the inputs' shapes")
            dtype = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
            out = torch.empty(shape, dtype=dtype, device=self.device)
            if not ctx.set_tensor_address(name, out.data_ptr()):
                raise RuntimeError(f"TensorRT refused the address of output '{name}'")
            outs.append(out)
        # Our own stream, after the work that made the inputs and before the work that reads
        # the outputs (both on the caller's current stream).
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        with torch.cuda.device(self.device):
            ok = ctx.execute_async_v3(self.stream.cuda_stream)
        if not ok:
            raise RuntimeError("TensorRT execution failed")
        # Everything later on the caller's stream waits for the engine, so the inputs' and
        # outputs' memory (the caller stream's, in torch's allocator) is reused only after it.
        caller.wait_stream(self.stream)
        return outs


def _compile_kwargs(torch_tensorrt, precision: str, device: torch.device) -> dict:
    """Settings for convert_exported_program_to_serialized_trt_engine that this torch-tensorrt
    knows (CompilationSettings fields). No precision setting: the model's dtypes decide."""
    fields = {f.name for f in dataclasses.fields(torch_tensorrt.dynamo.CompilationSettings)}
    kw: dict = {"device": device}
    if "min_block_size" in fields:
        kw["min_block_size"] = 1
    if precision == "fp32" and "disable_tf32" in fields:  # fp32 means fp32, not TF32
        kw["disable_tf32"] = True
    return kw


def _takes_binding_names(torch_tensorrt) -> bool:
    convert = torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine
    params = inspect.signature(convert).parameters
    return "arg_input_binding_names" in params and "output_binding_names" in params


@register
class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = {"cuda": ("fp16", "fp32")}

    @classmethod
    def unavailable_reason(cls, device: torch.device) -> str | None:
        if device.type != "cuda" or not torch.cuda.is_available():
            return "TensorRT needs a CUDA GPU (use openvino/onnxruntime/torch on a CPU)"
        try:
            import tensorrt  # noqa: F401
            import torch_tensorrt  # noqa: F401
        except ImportError as e:
            return (f"torch-tensorrt is not installed ({e}); make setup installs it where an "
                    f"NVIDIA GPU is present (README: Deployment, NVIDIA's index)")
        except Exception as e:  # OSError (a missing libnvinfer), a bare Exception, ...
            return (f"torch-tensorrt does not import ({type(e).__name__}: {e}); check that its "
                    f"TensorRT and CUDA libraries match (make setup, STEMSEG_RETRY_TRT=1)")
        return None

    @classmethod
    def version(cls) -> str:
        import tensorrt
        import torch_tensorrt

        return f"tensorrt {tensorrt.__version__}, torch-tensorrt {torch_tensorrt.__version__}"

    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        self._frame_shape = tuple(frame_shape)
        self._dtype = getattr(torch, _DTYPES[self.precision])
        # The graphs are built from a copy in the engine's precision (fp16: a half model).
        self._net = copy.deepcopy(self.model).to(self.device, self._dtype).eval()
        self._encoder = self._engine("encoder", (1, *self._frame_shape), self._build_encoder)
        self._decoders: dict[int, EngineRunner] = {}
        self._decoder_for(clip_length)

    def _engine(self, part: str, shape: tuple[int, ...], build) -> EngineRunner:
        key = self.artifact_key(part, shape, io="by-name")

        def write(folder) -> None:
            engine, names = build()
            (folder / ENGINE).write_bytes(engine)
            (folder / BINDINGS).write_text(json.dumps(names))

        def load(folder) -> EngineRunner:
            names = json.loads((folder / BINDINGS).read_text())
            return EngineRunner((folder / ENGINE).read_bytes(), names["inputs"],
                                names["outputs"], self.device)

        runner, built = self.cache.get_or_build(key, write, load)
        log.info("tensorrt %s %s engine %s", part, self.precision,
                 "built" if built else "loaded from the cache")
        return runner

    def _serialize(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...],
                   in_names: tuple[str, ...], out_names: tuple[str, ...]
                   ) -> tuple[bytes, dict[str, list[str]]]:
        """(engine bytes, {"inputs": [...], "outputs": [...]}) of ``module`` on ``args``."""
        import torch_tensorrt

        convert = torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine
        with torch.inference_mode(False), torch.no_grad():
            args = tuple(a.clone() for a in args)  # not inference tensors (made by a clip)
            exported = torch.export.export(module, args)
            kw = _compile_kwargs(torch_tensorrt, self.precision, self.device)
            if _takes_binding_names(torch_tensorrt):
                kw.update(arg_input_binding_names=tuple(in_names),
                          output_binding_names=tuple(out_names))
                names = {"inputs": list(in_names), "outputs": list(out_names)}
            else:  # torch-tensorrt's own names: the program's input names, output0, output1...
                names = {"inputs": list(exported.graph_signature.user_inputs),
                         "outputs": [f"output{i}" for i in range(len(out_names))]}
            engine = convert(exported, arg_inputs=list(args), **kw)
        return bytes(engine), names  # bytes, or TensorRT's IHostMemory in some versions

    def _build_encoder(self) -> tuple[bytes, dict[str, list[str]]]:
        from stemseg_core.export.split import FrameEncoder  # torch: imported when building

        with torch.inference_mode(False):
            example = torch.rand(1, *self._frame_shape, device=self.device,
                                 dtype=self._dtype) * 255
        enc = FrameEncoder(self._net).eval()
        return self._serialize(enc, (example,), ("frames",), enc.names)

    def prepare_decoder(self, length: int) -> None:
        self._decoder_for(length)

    def _decoder_for(self, length: int) -> EngineRunner:
        if length not in self._decoders:
            def build() -> tuple[bytes, dict[str, list[str]]]:
                from stemseg_core.export.split import ClipDecoder, FrameEncoder

                with torch.inference_mode(False), torch.no_grad():
                    frames = torch.rand(length, *self._frame_shape, device=self.device,
                                        dtype=self._dtype) * 255
                    enc = FrameEncoder(self._net)
                    feats = tuple(f.contiguous() for f in enc(frames))
                dec = ClipDecoder(self._net).eval()
                return self._serialize(dec, feats, enc.names, dec.names)
            self._decoders[length] = self._engine(f"decoder-L{length}", self._frame_shape,
                                                  build)
        return self._decoders[length]

    def encode(self, frames: np.ndarray) -> Features:
        x = to_device(frames, self.device)
        per_frame = [self._encoder(x[i:i + 1]) for i in range(x.shape[0])]
        return to_numpy(tuple(torch.cat([f[k] for f in per_frame])
                              for k in range(len(per_frame[0]))))

    def decode(self, feats: Features) -> dict[str, np.ndarray]:
        outs = self._decoder_for(int(feats[0].shape[0]))(*(to_device(f, self.device)
                                                           for f in feats))
        return dict(zip(self.decoder.names, to_numpy(tuple(outs))))


__all__ = ["EngineRunner", "TensorRTBackend"]
