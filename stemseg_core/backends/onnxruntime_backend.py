"""``onnxruntime``: the two ONNX graphs in ONNX Runtime (CPU; the CUDA provider where the
installed onnxruntime has it). fp32 only. Numpy in and out, as ONNX Runtime itself."""
from __future__ import annotations

from typing import Any

import numpy as np

from stemseg_core.backends.base import Backend, Features, register
from stemseg_core.backends.onnx_files import decoder_onnx, encoder_onnx


@register
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = {"cpu": ("fp32",), "cuda": ("fp32",)}
    needs_model = False

    @classmethod
    def unavailable_reason(cls, device: Any) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return ("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu, or use "
                    "backend tensorrt/torch on the GPU)")
        return None

    @classmethod
    def version(cls) -> str:
        import onnxruntime as ort

        return ort.__version__

    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        self._frame_shape = tuple(frame_shape)
        self._decoders: dict[int, object] = {}
        self._encoder = self._session(encoder_onnx(self, self._frame_shape))
        if self.feature_names is None:  # no torch model: the graph's own names
            self.feature_names = tuple(o.name for o in self._encoder.get_outputs())
        self.prepare_decoder(clip_length)

    def build_artifacts(self, frame_shape: tuple[int, int, int], lengths: list[int]) -> None:
        """Build or load the ONNX files of the encoder and of the decoders of ``lengths`` (no
        sessions: `stemseg export`, a build for a process without torch)."""
        encoder_onnx(self, tuple(frame_shape))
        for n in lengths:
            decoder_onnx(self, tuple(frame_shape), n)

    def prepare_decoder(self, length: int) -> None:
        if length not in self._decoders:
            self._decoders[length] = self._session(
                decoder_onnx(self, self._frame_shape, length))
            if self.output_names is None:
                self.output_names = tuple(o.name for o in self._decoders[length].get_outputs())

    def _session(self, path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.num_threads:
            opts.intra_op_num_threads = self.num_threads
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                     if self.device.type == "cuda" else ["CPUExecutionProvider"])
        return ort.InferenceSession(str(path), opts, providers=providers)

    def _run(self, session, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {k: np.ascontiguousarray(v, np.float32) for k, v in inputs.items()}
        return [np.asarray(o, np.float32) for o in session.run(None, feed)]

    def encode(self, frames: np.ndarray) -> Features:
        return tuple(self._run(self._encoder, {"frames": frames}))

    def decode(self, feats: Features) -> dict[str, np.ndarray]:
        length = int(feats[0].shape[0])
        self.prepare_decoder(length)  # a shorter clip (flush): its own graph, built once
        outs = self._run(self._decoders[length], dict(zip(self.feature_names, feats)))
        return dict(zip(self.output_names, outs))
