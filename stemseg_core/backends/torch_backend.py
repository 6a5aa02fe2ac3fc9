"""``torch``: eager PyTorch on the CPU or a CUDA GPU (the default backend; nothing is built).

fp32 gives the same bits as ``STEmSeg.forward`` on the whole clip: on the CPU, oneDNN computes a
batch of one frame with other kernels than a batch of two or more (measured: max |diff| 5e-5 on
the FPN maps), so frames are encoded at least two at a time (``min_batch``; a lone new frame is
paired with a copy of itself). fp16/bf16 run the network under autocast (AMP), on CUDA;
bf16 also on the CPU. Numpy in and out (backends/base.py): the frames go to the device in
``encode``, the features and outputs come back as float32 (on the CPU without a copy).
"""
from __future__ import annotations

import contextlib

import numpy as np

from stemseg_core.backends.base import Backend, Features, register
from stemseg_core.backends.lazy_torch import torch


@register
class TorchBackend(Backend):
    name = "torch"
    precisions = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")}
    min_batch = 2

    _AMP = {"fp16": "float16", "bf16": "bfloat16"}  # torch dtype names

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self._AMP[self.precision]))

    def prepare(self, frame_shape: tuple[int, int, int], clip_length: int) -> None:
        if self.num_threads and self.device.type == "cpu":
            torch.set_num_threads(self.num_threads)

    def encode(self, frames: np.ndarray) -> Features:
        with torch.inference_mode(), self._autocast():
            return to_numpy(self.encoder(to_device(frames, self.device)))

    def decode(self, feats: Features) -> dict[str, np.ndarray]:
        with torch.inference_mode(), self._autocast():
            out = self.decoder(*(to_device(f, self.device) for f in feats))
        return dict(zip(self.decoder.names, to_numpy(out)))


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy array as a float32 tensor on ``device`` (shares memory on the CPU)."""
    return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(device)


def to_numpy(tensors: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, ...]:
    """Tensors (any device, any float dtype) -> numpy float32 arrays."""
    return tuple(t.float().cpu().numpy() for t in tensors)
