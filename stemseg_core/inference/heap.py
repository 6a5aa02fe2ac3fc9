"""Hand freed heap memory back to the operating system after each clip.

glibc keeps memory freed by ``free`` in its arenas; a clip's temporary arrays (post-processing,
the runtime's per-inference buffers) leave ~70 MiB of such free heap resident in the node with the
demo model (192x640, OpenVINO), which ``malloc_trim(0)`` returns to the system in 1-5 ms per clip
(measured 2026-12-06: 617 -> 546 MiB after a 20-frame stream, docs/experiments.md). Elsewhere than
glibc (musl, macOS) this is a no-op.
"""
from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim():
    """libc's ``malloc_trim`` or None where the C library has none."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:  # no C library handle (unusual platforms)
        return None


def trim_heap() -> bool:
    """Return the free memory at the top of every malloc arena to the system; True if done."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
