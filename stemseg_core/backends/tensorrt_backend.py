"""``tensorrt``: TensorRT engines built with torch-tensorrt, on NVIDIA GPUs (fp16, fp32).

Each graph is exported with ``torch.export`` and compiled whole into one serialized TensorRT
engine (``convert_exported_program_to_serialized_trt_engine``); the engine bytes are the cached
artifact (cache.py keys them by GPU model, TensorRT and torch-tensorrt versions, weights, size, T,
precision) and run with TensorRT's own runtime on torch's current CUDA stream, in and out of
torch tensors (no copies through the host, nothing unpickled). fp16 builds the graphs from a
half-precision copy of the model (explicit typing); the mixing (coordinates, exp of the variance)
stays fp32, as in the eager model. The encoder engine takes one frame (a clip's new frames run
one after another), so one engine serves clips and their overlap alike.
"""
from __future__ import annotations

import copy
import dataclasses
import logging

import torch

from stemseg_core.backends.base import Backend, Features, register
from stemseg_core.export.split import ClipDecoder, FrameEncoder

log = logging.getLogger(__name__)

ENGINE = "model.engine"
_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.bool: torch.bool, trt.int8: torch.int8}
    for name, td in (("bfloat16", torch.bfloat16), ("int64", torch.int64)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = td
    return table[dtype]


class EngineRunner:
    """A deserialized engine run on torch tensors: inputs in engine order -> outputs."""

    def __init__(self, engine_bytes: bytes) -> None:
        import tensorrt as trt

        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]

    def __call__(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        if len(tensors) != len(self.inputs):
            raise ValueError(f"engine takes {len(self.inputs)} inputs, got {len(tensors)}")
        keep = []
        for name, t in zip(self.inputs, tensors):
            want = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
            t = t.to(want).contiguous()
            keep.append(t)
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
            out = torch.empty(shape, dtype=dtype, device=keep[0].device)
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        stream = torch.cuda.current_stream(keep[0].device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return outs


def _compile_kwargs(torch_tensorrt, precision: str) -> dict:
    """Settings this torch-tensorrt version knows: explicit typing where it exists (the
    half-precision model then gives an FP16 engine), else the older enabled_precisions."""
    fields = {f.name for f in dataclasses.fields(torch_tensorrt.dynamo.CompilationSettings)}
    kw: dict = {}
    if "use_explicit_typing" in fields:
        kw["use_explicit_typing"] = True
    else:
        kw["enabled_precisions"] = {_DTYPES[precision]}
    if "min_block_size" in fields:
        kw["min_block_size"] = 1
    if precision == "fp32" and "disable_tf32" in fields:  # fp32 means fp32, not TF32
        kw["disable_tf32"] = True
    return kw


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
            return (f"torch-tensorrt is not installed ({e}); `pip install -e .[gpu]` (make setup "
                    f"does it where CUDA is present)")
        return None

    @classmethod
    def version(cls) -> str:
        import tensorrt
        import torch_tensorrt

        return f"tensorrt {tensorrt.__version__}, torch-tensorrt {torch_tensorrt.__version__}"

    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        self._frame_shape = tuple(frame_shape)
        self._dtype = _DTYPES[self.precision]
        # The graphs are built from a copy in the engine's precision (fp16: a half model).
        self._net = copy.deepcopy(self.model).to(self.device, self._dtype).eval()
        self._encoder = self._engine("encoder", (1, *self._frame_shape), self._build_encoder)
        self._decoders: dict[int, EngineRunner] = {}
        self._decoder_for(clip_length)

    def _engine(self, part: str, shape: tuple[int, ...], build) -> EngineRunner:
        key = self.artifact_key(part, shape)
        runner, built = self.cache.get_or_build(
            key, lambda d: (d / ENGINE).write_bytes(build()),
            lambda d: EngineRunner((d / ENGINE).read_bytes()))
        log.info("tensorrt %s %s engine %s", part, self.precision,
                 "built" if built else "loaded from the cache")
        return runner

    def _serialize(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> bytes:
        import torch_tensorrt

        with torch.no_grad():
            exported = torch.export.export(module, args)
            engine = torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine(
                exported, arg_inputs=list(args), **_compile_kwargs(torch_tensorrt,
                                                                   self.precision))
        return bytes(engine)  # bytes, or TensorRT's IHostMemory in some versions

    def _build_encoder(self) -> bytes:
        example = torch.rand(1, *self._frame_shape, device=self.device, dtype=self._dtype) * 255
        return self._serialize(FrameEncoder(self._net).eval(), (example,))

    def prepare_decoder(self, length: int) -> None:
        self._decoder_for(length)

    def _decoder_for(self, length: int) -> EngineRunner:
        if length not in self._decoders:
            def build() -> bytes:
                with torch.no_grad():
                    frames = torch.rand(length, *self._frame_shape, device=self.device,
                                        dtype=self._dtype) * 255
                    feats = tuple(f.contiguous() for f in FrameEncoder(self._net)(frames))
                return self._serialize(ClipDecoder(self._net).eval(), feats)
            self._decoders[length] = self._engine(f"decoder-L{length}", self._frame_shape,
                                                  build)
        return self._decoders[length]

    def encode(self, frames: torch.Tensor) -> Features:
        per_frame = [self._encoder(frames[i:i + 1]) for i in range(frames.shape[0])]
        return tuple(torch.cat([f[k] for f in per_frame]) for k in range(len(per_frame[0])))

    def decode(self, feats: Features) -> dict[str, torch.Tensor]:
        outs = self._decoder_for(int(feats[0].shape[0]))(*feats)
        return {n: o.float() for n, o in zip(self.decoder.names, outs)}


__all__ = ["EngineRunner", "TensorRTBackend"]
