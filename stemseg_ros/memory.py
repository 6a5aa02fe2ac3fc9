"""The node process's heap: how many glibc malloc arenas it may use, and giving freed memory back.

glibc gives each new thread that allocates its own arena (up to 8 per core). The node's threads
(DDS, executor, worker, OpenVINO/torch pools) each keep freed clip buffers in their own arena,
so memory freed by a model reload is spread over many partly used heaps and RSS creeps up with
every lifecycle cycle. Two arenas kept the node flat over configure/cleanup cycles at no
measurable cost in speed (docs/experiments.md, "Soak"). A MALLOC_ARENA_MAX set by the user wins.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

#: Arenas the node process uses unless MALLOC_ARENA_MAX is set in its environment.
NODE_MALLOC_ARENAS = 2
#: glibc's mallopt() parameter number of M_ARENA_MAX (malloc.h).
M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def limit_malloc_arenas(arenas: int = NODE_MALLOC_ARENAS,
                        environ: dict[str, str] | None = None) -> int | None:
    """Cap glibc's malloc arenas of this process at `arenas` (call before threads start).

    Returns the cap set, or None when the environment's MALLOC_ARENA_MAX already decides
    (glibc reads it itself) or the C library is not glibc."""
    env = os.environ if environ is None else environ
    if env.get("MALLOC_ARENA_MAX"):
        return None
    libc = _libc()
    if libc is None or libc.mallopt(M_ARENA_MAX, int(arenas)) != 1:
        return None
    return int(arenas)


def release_memory() -> None:
    """Give freed memory back: Python garbage, torch's CUDA cache, glibc's heap (RSS)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
