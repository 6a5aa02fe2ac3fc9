"""What a built backend artifact depends on, beside its backend, precision and shape: the
model's weights and config (hashed) and the device it was built on (artifact keys, cache.py)."""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: CPU flags that change which kernels a CPU backend picks (x86 ISA extensions).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16",
             "amx_int8", "amx_tile", "avx_vnni")


def weights_hash(model: Any) -> str:
    """sha256 (16 hex digits) of a torch model's state_dict, names and values (needs torch; a
    runtime without torch reads it from the checkpoint index, backends/checkpoint_index.py)."""
    import torch

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        if v.numel():
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class DeviceSpec:
    """A device without torch: ``type`` "cpu" or "cuda", ``index`` the GPU (None = current).
    ``str()`` gives what ``torch.device()`` takes."""

    type: str
    index: int | None = None

    @classmethod
    def of(cls, device: Any) -> DeviceSpec:
        """From a string ("cpu", "cuda", "cuda:1"), a ``torch.device`` or a DeviceSpec."""
        if isinstance(device, DeviceSpec):
            return device
        if not isinstance(device, str):  # a torch.device
            return cls(str(device.type), device.index)
        kind, _, idx = device.partition(":")
        if kind not in ("cpu", "cuda") or (idx and not idx.isdigit()):
            raise ValueError(f"device {device!r}: expected cpu, cuda or cuda:N")
        return cls(kind, int(idx) if idx else None)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def config_hash(cfg_dict: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg_dict, sort_keys=True).encode()).hexdigest()[:16]


def cpu_description() -> str:
    """CPU model name and the ISA flags that matter to kernels (from /proc/cpuinfo on Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and ":" in line:
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and ":" in line:
            flags = set(line.split(":", 1)[1].split())
            break
    have = [f for f in CPU_FLAGS if f in flags]
    return f"{name} [{' '.join(have)}]"


def device_description(device: Any) -> str:
    """What an artifact built on ``device`` (anything with ``type`` and ``index``: a
    :class:`DeviceSpec` or a ``torch.device``) depends on: GPU model + compute capability, or
    the CPU."""
    if device.type == "cuda":
        import torch

        idx = device.index if device.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        return f"{p.name} sm_{p.major}{p.minor}"
    return cpu_description()


__all__ = ["CPU_FLAGS", "DeviceSpec", "config_hash", "cpu_description", "device_description",
           "weights_hash"]
