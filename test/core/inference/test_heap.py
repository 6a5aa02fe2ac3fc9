"""heap.trim_heap gives freed malloc memory back: resident memory falls by what was freed."""
from __future__ import annotations

import ctypes
import re
import sys
from pathlib import Path

import pytest

from stemseg_core.inference.heap import trim_heap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc and glibc's malloc_trim")


def _rss_mib() -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def test_trim_returns_freed_heap_to_the_system():
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "malloc_trim"):
        pytest.skip("the C library is not glibc (no malloc_trim)")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # 120 MiB in small blocks (below the mmap threshold, so they live in the heap), touched;
    # all but the last freed: the last block pins the heap's top, so free() alone keeps it all.
    blocks = [libc.malloc(4096) for _ in range(30_000)]
    for b in blocks:
        ctypes.memset(b, 1, 4096)
    before = _rss_mib()
    for b in blocks[:-1]:
        libc.free(b)
    freed = _rss_mib()
    assert trim_heap() is True
    after = _rss_mib()
    libc.free(blocks[-1])
    assert freed - after > 80, (before, freed, after)  # ~117 MiB handed back
