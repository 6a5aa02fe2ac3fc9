"""The ONNX files of the two graphs, built once and cached (shared by ONNX Runtime, OpenVINO
and the INT8 export): key part ``onnx`` with the torch version, as the exporter is torch's.
Without a torch model (a runtime from the cache) they are only loaded (Backend.artifact)."""
from __future__ import annotations

from pathlib import Path

from stemseg_core.backends.base import Backend

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"


def _onnx_key(backend: Backend, part: str, shape: tuple[int, ...]) -> dict:
    key = backend.artifact_key(part, shape)
    key.update({"backend": "onnx", "version": key["torch"], "precision": "fp32",
                "device": "any"})
    return key


def encoder_onnx(backend: Backend, frame_shape: tuple[int, int, int]) -> Path:
    """Path of the cached encoder ONNX file for frames of ``frame_shape`` (3, Hp, Wp)."""
    def build(d: Path) -> None:
        from stemseg_core.export.graphs import export_encoder_onnx

        export_encoder_onnx(backend.model, frame_shape, d / ENCODER_FILE)

    folder = backend.artifact(_onnx_key(backend, "encoder", frame_shape), build,
                              lambda d: _exists(d / ENCODER_FILE))
    return folder / ENCODER_FILE


def decoder_onnx(backend: Backend, frame_shape: tuple[int, int, int], clip_length: int) -> Path:
    """Path of the cached decoder ONNX file for clips of ``clip_length`` frames."""
    def build(d: Path) -> None:
        from stemseg_core.export.graphs import export_decoder_onnx

        export_decoder_onnx(backend.model, frame_shape, clip_length, d / DECODER_FILE)

    folder = backend.artifact(_onnx_key(backend, f"decoder-L{clip_length}", frame_shape), build,
                              lambda d: _exists(d / DECODER_FILE))
    return folder / DECODER_FILE


def _exists(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(path)
    return path.parent
