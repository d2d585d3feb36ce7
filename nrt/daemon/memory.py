"""Keeping a months-long daemon's resident memory flat under glibc's allocator.

The daemon's Python objects are bounded (see ``Daemon._forget_old``), but its numpy
work runs on worker threads, and glibc gives each thread that allocates its own
arena (up to 8 per core) and returns freed memory at the top of a heap only. Arrays
of varying sizes, freed in varying order, then leave the resident size creeping up
by a few MiB an hour (the 7-day soak: +15 MiB a day). Two standard remedies:

- ``limit_arenas``: at most a few arenas (``mallopt(M_ARENA_MAX)``, the same as
  ``MALLOC_ARENA_MAX``), so that freed blocks are found again by other threads;
- ``trim``: ``malloc_trim(0)`` now and then, which hands free pages inside the heaps
  back to the kernel, not only those at the top;
- ``fix_mmap_threshold``: blocks of 256 KiB and more always get their own mapping,
  returned to the kernel when freed. glibc's default threshold is dynamic: each large
  block freed raises it (up to 32 MiB), so the quick-look's arrays move into the
  heap one pointing after another and the resident level climbs for hours (a 24 h
  replay's RSS level: 221 MiB after 1 h, 271 after 8 h; fixed: 241 -> 249).

Both are no-ops where the C library is not glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: ``mallopt`` parameter numbers in glibc's malloc.h.
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (present in glibc only)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for the rest of the process; False if not glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, arenas))


def fix_mmap_threshold(nbytes: int = 256 << 10) -> bool:
    """Serve blocks of `nbytes` and more by mmap, always; False if not glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, nbytes))


def trim() -> bool:
    """Return free heap pages to the kernel; True if glibc released any."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))
