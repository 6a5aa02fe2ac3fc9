"""What a built backend artifact depends on, beside its backend, precision and shape: the
model's weights and config (hashed) and the device it was built on (artifact keys, cache.py)."""
from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import torch

#: CPU flags that change which kernels a CPU backend picks (x86 ISA extensions).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16",
             "amx_int8", "amx_tile", "avx_vnni")


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of the model's state_dict, names and values."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        if v.numel():
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


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


def device_description(device: torch.device) -> str:
    """What an artifact built on ``device`` depends on: GPU model + compute capability, or CPU."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        return f"{p.name} sm_{p.major}{p.minor}"
    return cpu_description()


__all__ = ["CPU_FLAGS", "config_hash", "cpu_description", "device_description", "weights_hash"]
