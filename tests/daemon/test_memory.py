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
