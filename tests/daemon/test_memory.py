"""The daemon's allocator upkeep (nrt.daemon.memory): freed heap holes go back to the kernel."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = r"""
import os
from nrt.daemon import memory

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20

assert memory.limit_arenas(2)
big, small = [], []
for _ in range(3000):  # 100 kB blocks come from the heap (below glibc's mmap threshold)
    big.append(os.urandom(100_000))
    small.append(os.urandom(600))  # a live block after each: the freed ones leave holes
alive = rss_mib()
del big
freed = rss_mib()
released = memory.trim()
print(alive, freed, rss_mib(), released)
"""


def test_trim_hands_freed_heap_holes_back_to_the_kernel():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    alive, freed, trimmed, released = out.stdout.split()
    alive, freed, trimmed = int(alive), int(freed), int(trimmed)
    assert alive - freed < 50, "free() alone keeps the holes resident (the problem)"
    assert released == "True" and freed - trimmed > 200, (alive, freed, trimmed)


THRESHOLD_PROGRAM = r"""
import ctypes, importlib.util, os, sys
import nrt

# the module alone: importing the daemon's 800 modules moves the heap's layout about
path = os.path.join(os.path.dirname(nrt.__file__), "daemon", "memory.py")
spec = importlib.util.spec_from_file_location("memory", path)
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)

libc = ctypes.CDLL("libc.so.6")  # malloc directly: what numpy does for its arrays
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20

if sys.argv[1] == "fixed":
    assert memory.fix_mmap_threshold()
libc.free(libc.malloc(8 << 20))  # mmapped; freeing it raises glibc's dynamic threshold
blocks, small = [], []
for _ in range(1000):  # 320 kB blocks, as a quick-look's arrays
    blocks.append(libc.malloc(320_000))
    ctypes.memset(blocks[-1], 1, 320_000)
    small.append(libc.malloc(600))  # live blocks in between: no freeing at the heap's top
alive = rss_mib()
for block in blocks:
    libc.free(block)
print(alive, rss_mib())
"""


def test_large_blocks_go_back_to_the_kernel_when_freed_with_a_fixed_mmap_threshold():
    def run(mode: str) -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-c", THRESHOLD_PROGRAM, mode], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        alive, freed = out.stdout.split()
        return int(alive), int(freed)

    alive, freed = run("default")
    assert alive - freed < 50, "with the dynamic threshold they stay in the heap (the problem)"
    alive, freed = run("fixed")
    assert alive - freed > 250, (alive, freed)
