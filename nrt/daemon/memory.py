"""Keeping a months-long daemon's resident memory flat under glibc's allocator.

The daemon's Python objects are bounded (see ``Daemon._forget_old``), but its numpy
work runs on worker threads, and glibc gives each thread that allocates its own
arena (up to 8 per core) and returns freed memory at the top of a heap only. Arrays
of varying sizes, freed in varying order, then leave the resident size creeping up
by a few MiB an hour (the 7-day soak: +15 MiB a day). Two standard remedies:

- ``limit_arenas``: at most a few arenas (``mallopt(M_ARENA_MAX)``, the same as
  ``MALLOC_ARENA_MAX``), so that freed blocks are found again by other threads;
- ``trim``: ``malloc_trim(0)`` now and then, which hands free pages inside the heaps
  back to the kernel, not only those at the top.

Both are no-ops where the C library is not glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: ``mallopt`` parameter number of M_ARENA_MAX in glibc's malloc.h.
M_ARENA_MAX = -8


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


def trim() -> bool:
    """Return free heap pages to the kernel; True if glibc released any."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))
