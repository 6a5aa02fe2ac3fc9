"""stemseg_ros.memory: the node's glibc arena cap and giving memory back."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stemseg_ros import memory

#: Run in a fresh interpreter: cap the arenas (or not), let 6 threads allocate at once, then
#: count glibc's arenas in its malloc_info() report (one <heap nr=...> per arena).
COUNT_ARENAS = """
import ctypes, sys, tempfile, threading
from stemseg_ros import memory
if sys.argv[1] == "cap":
    assert memory.limit_malloc_arenas(2) == 2
barrier = threading.Barrier(6)
def work():
    keep = [bytearray(100_000) for _ in range(20)]  # malloc'd from this thread's arena
    barrier.wait()  # all threads alive at once: none inherits another's freed arena
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
print(open(path).read().count("<heap nr="))
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", COUNT_ARENAS, mode], env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip())


@pytest.mark.skipif(memory._libc() is None, reason="not glibc: no malloc arenas to cap")
def test_arena_cap_holds_with_many_threads():
    assert _arenas("free") > 2  # without the cap each allocating thread gets its own arena
    assert _arenas("cap") <= 2


def test_users_malloc_arena_max_wins():
    assert memory.limit_malloc_arenas(2, environ={"MALLOC_ARENA_MAX": "4"}) is None
