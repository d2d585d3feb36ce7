"""The memory tier: decoded outputs, least recently used evicted past a byte budget.

A long-running user (the daemon) also scopes it: ``hold(signatures)`` marks the
entries a unit of work (a pointing's graphs) uses, and when the last holder of a
signature is done its entry is let go, so memory holds the working set of what is
running rather than filling to the budget with results nobody will ask for again
(cached ones are still on the local tier, a millisecond away).
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nrt.cache.tier import Entry


def _sizeof(value: Any) -> int:
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, dict):
        return sum(_sizeof(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_sizeof(v) for v in value)
    return sys.getsizeof(value)


class MemoryTier:
    """Holds decoded outputs, so a hit costs nothing but a dict lookup."""

    name = "memory"
    read_only = False

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Entry, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._holders: Counter[str] = Counter()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def has(self, signature: str) -> bool:
        return signature in self._entries

    def get(self, signature: str) -> Entry | None:
        with self._lock:
            found = self._entries.get(signature)
            if found is None:
                return None
            self._entries.move_to_end(signature)
            return found[0]

    def put(self, entry: Entry) -> None:
        if entry.outputs is None and not entry.failed:
            raise ValueError("the memory tier stores decoded outputs; this entry has none")
        size = _sizeof(entry.outputs or {})
        if size > self.max_bytes:
            return  # larger than the whole budget: not worth evicting everything for
        with self._lock:
            old = self._entries.pop(entry.signature, None)
            if old:
                self._bytes -= old[1]
            self._entries[entry.signature] = (Entry(entry.manifest, None, entry.outputs), size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed

    def delete(self, signature: str) -> bool:
        with self._lock:
            old = self._entries.pop(signature, None)
            if old:
                self._bytes -= old[1]
            return old is not None

    @contextmanager
    def hold(self, signatures: Iterable[str]) -> Iterator[None]:
        """Keep `signatures` while the block runs; then drop those nobody else holds."""
        held = set(signatures)
        with self._lock:
            self._holders.update(held)
        try:
            yield
        finally:
            with self._lock:
                self._holders.subtract(held)
                free = [s for s in held if self._holders[s] <= 0]
                for signature in free:
                    del self._holders[signature]
            for signature in free:
                self.delete(signature)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def cost(self, nbytes: int) -> float:
        return 1e-6
