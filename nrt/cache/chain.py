"""The cache chain: memory, then storage tiers by cost; one index; single flight.

Lookup takes the cheapest tier that holds a signature (skipping a tier whose
transfer would cost more than recomputing, when the run time is known); a hit
is copied into the faster tiers. New results go to memory and, for elements
with ``cached = True``, to the first writable storage tier (local), recorded in
the index. A corrupt entry is removed, counted, logged, and treated as a miss.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrt import metrics, paths, products
from nrt.cache.flight import SingleFlight
from nrt.cache.index import Index
from nrt.cache.local import CacheWriteError, LocalTier
from nrt.cache.memory import MemoryTier
from nrt.cache.tier import Entry, Tier

if TYPE_CHECKING:
    from nrt.element import Element

log = logging.getLogger(__name__)


class Cache:
    """What the executor talks to: lookup, store, single flight, maintenance."""

    def __init__(
        self,
        tiers: list[Tier],
        index: Index | None = None,
        memory: MemoryTier | None = None,
        lock_dir: Path | None = None,
    ) -> None:
        self.memory = memory if memory is not None else MemoryTier()
        self.tiers = list(tiers)
        self.index = index
        self.single_flight = SingleFlight(lock_dir)
        self._remembered: set[str] = set()
        local = self.local
        if (
            index is not None
            and local is not None
            and (index.rebuilt or index.stats()["products"] == 0)
        ):
            self.rebuild_index()

    @classmethod
    def open(
        cls,
        cache_dir: Path | str | None = None,
        state_dir: Path | str | None = None,
        memory_bytes: int = 1 << 30,
    ) -> Cache:
        """The standard chain: memory + local directory, index in the state directory."""
        root = paths.cache_dir(cache_dir)
        index = Index(paths.state_dir(state_dir) / "index.db")
        return cls([LocalTier(root)], index, MemoryTier(memory_bytes), lock_dir=root / ".locks")

    @property
    def local(self) -> LocalTier | None:
        return next((t for t in self.tiers if isinstance(t, LocalTier) and not t.read_only), None)

    # ------------------------------------------------------------ lookup

    def lookup(self, signature: str, persistent: bool = True) -> Entry | None:
        """The entry for `signature` from the cheapest tier holding it, or None."""
        entry = self.memory.get(signature)
        if entry is not None:
            if entry.failed and entry.expired:
                self.memory.delete(signature)
                metrics.CACHE_REQUESTS.labels("memory", "expired").inc()
            else:
                metrics.CACHE_REQUESTS.labels("memory", "hit").inc()
                return entry
        else:
            metrics.CACHE_REQUESTS.labels("memory", "miss").inc()
        if not persistent:
            return None
        row = self.index.get(signature) if self.index else None
        size = row["size"] if row and row["size"] else 0
        run_seconds = row["run_seconds"] if row else None
        for tier in sorted(self.tiers, key=lambda t: t.cost(size)):
            if run_seconds is not None and tier is not self.local and tier.cost(size) > run_seconds:
                metrics.CACHE_REQUESTS.labels(tier.name, "skipped_costly").inc()
                continue
            entry = self._get_from(tier, signature)
            if entry is None:
                continue
            if entry.failed and entry.expired:
                metrics.CACHE_REQUESTS.labels(tier.name, "expired").inc()
                self._remove(tier, signature)
                continue
            metrics.CACHE_REQUESTS.labels(tier.name, "hit").inc()
            self._promote(entry, tier)
            return entry
        return None

    def _get_from(self, tier: Tier, signature: str) -> Entry | None:
        try:
            entry = tier.get(signature)
        except products.CorruptProduct as exc:
            metrics.CACHE_REQUESTS.labels(tier.name, "corrupt").inc()
            log.error("corrupt cache entry in tier %s: %s; removed, will recompute", tier.name, exc)
            self._remove(tier, signature)
            return None
        if entry is None:
            metrics.CACHE_REQUESTS.labels(tier.name, "miss").inc()
        return entry

    def _remove(self, tier: Tier, signature: str) -> None:
        if self.index:
            self.index.forget(signature, tier.name)
        if not tier.read_only:
            tier.delete(signature)

    def _promote(self, entry: Entry, source: Tier) -> None:
        """Copy a hit into the faster tiers: the local directory, then memory."""
        local = self.local
        if local is not None and source is not local and not entry.failed:
            try:
                local.put(entry)
                if self.index:
                    self.index.record(entry.manifest, local.name)
            except CacheWriteError as exc:
                metrics.CACHE_WRITE_ERRORS.labels(local.name).inc()
                log.warning("could not copy %s into the local tier: %s", entry.signature[:12], exc)
        if entry.outputs is None and entry.directory is not None and not entry.failed:
            entry.outputs = products.read_outputs(
                entry.directory, entry.manifest.get("outputs", {})
            )
        self.memory.put(entry)
        if self.index:
            self.index.touch(entry.signature)

    # ------------------------------------------------------------ storing

    @staticmethod
    def manifest_for(element: Element, run_seconds: float | None) -> dict[str, Any]:
        cls = type(element)
        return {
            "format": 1,
            "signature": element.signature,
            "element": cls.__qualname__,
            "version": str(cls.version),
            "pointing": element.pointing,
            "components": element.components(),
            "params_display": _display(element.parameters),
            "created": time.time(),
            "run_seconds": run_seconds,
            "status": "ok",
        }

    def store(self, element: Element, outputs: dict[str, Any], run_seconds: float) -> Entry:
        """Keep a fresh result: in memory, and persistently if the element is ``cached``."""
        entry = Entry(self.manifest_for(element, run_seconds), outputs=outputs)
        if type(element).cached:
            self._persist(entry)
        self.memory.put(entry)
        return entry

    def store_failure(self, element: Element, error: Exception, run_seconds: float) -> Entry:
        """Remember an AnalysisException as a negative result until it expires."""
        manifest = self.manifest_for(element, run_seconds)
        manifest.update(
            status="failed",
            error=str(error),
            expires=time.time() + float(type(element).negative_ttl),
            outputs={},
            files={},
        )
        entry = Entry(manifest, outputs={})
        if type(element).cached:
            self._persist(entry)
        self.memory.put(entry)
        return entry

    def _persist(self, entry: Entry) -> None:
        local = self.local
        if local is None:
            return
        try:
            local.put(entry)
        except CacheWriteError:
            metrics.CACHE_WRITE_ERRORS.labels(local.name).inc()
            raise
        if self.index:
            self.index.record(entry.manifest, local.name)

    def remember_graph(self, elements: list[Element]) -> None:
        """Record the components of every signature in a graph, for ``why`` (once per process)."""
        if self.index is None:
            return
        new = {e.signature: e for e in elements if e.signature not in self._remembered}
        if new:
            self.index.remember_many(
                (s, type(e).__qualname__, e.components()) for s, e in new.items()
            )
            self._remembered.update(new)

    # ------------------------------------------------------------ maintenance

    def rebuild_index(self) -> int:
        """Rebuild the index from the manifests in the local tier."""
        local = self.local
        if self.index is None or local is None:
            return 0
        manifests = []
        for signature in local.signatures():
            try:
                manifest = local.read_manifest(signature)
            except products.CorruptProduct:
                continue
            if manifest:
                manifests.append((manifest, local.name))
        n = self.index.rebuild(manifests)
        if n:
            log.info("cache index rebuilt from %d manifests in %s", n, local.root)
        return n

    def verify(self) -> dict[str, Any]:
        """Re-check every checksum; remove corrupt entries; reconcile the index."""
        local = self.local
        report: dict[str, Any] = {"checked": 0, "corrupt": [], "unindexed": 0, "dangling": 0}
        if local is None:
            return report
        present = set()
        for signature in local.signatures():
            report["checked"] += 1
            try:
                manifest = local.read_manifest(signature)
                if manifest is None:
                    continue
                if manifest.get("signature") != signature:
                    raise products.CorruptProduct(f"{local.path(signature)}: wrong signature")
                products.verify_files(local.path(signature), manifest.get("files", {}))
            except products.CorruptProduct as exc:
                metrics.CACHE_REQUESTS.labels(local.name, "corrupt").inc()
                log.error("verify: %s; entry removed", exc)
                report["corrupt"].append({"signature": signature, "problem": str(exc)})
                self._remove(local, signature)
                continue
            present.add(signature)
            if self.index and self.index.get(signature) is None:
                self.index.record(manifest, local.name)
                report["unindexed"] += 1
        if self.index:
            for row in list(self.index.products()):
                if local.name in row["tiers"] and row["signature"] not in present:
                    self.index.forget(row["signature"], local.name)
                    report["dangling"] += 1
        report["staging_cleaned"] = local.clean_staging()
        return report

    def gc(self, max_bytes: int | None = None, max_age: float | None = None) -> dict[str, Any]:
        """Evict from the local tier: expired negatives, then by age, then cheapest to recompute.

        Rows leave the index before their entries leave the disk, so the index
        never points at a missing entry (an orphan entry is re-indexed by verify).
        """
        local = self.local
        evicted: list[str] = []
        if local is None or self.index is None:
            return {"evicted": 0, "bytes_freed": 0}
        now = time.time()
        rows = [r for r in self.index.products() if local.name in r["tiers"]]
        freed = 0

        def evict(row: dict[str, Any]) -> None:
            nonlocal freed
            self.index.forget(row["signature"], local.name)
            local.delete(row["signature"])
            self.memory.delete(row["signature"])
            evicted.append(row["signature"])
            freed += row["size"] or 0

        keep = []
        for row in rows:
            expired = row["expires"] is not None and row["expires"] < now
            too_old = max_age is not None and now - (row["last_access"] or row["created"]) > max_age
            (evict if expired or too_old else keep.append)(row)
        if max_bytes is not None:
            total = sum(r["size"] or 0 for r in keep)
            # Cheapest to recompute per byte freed goes first; unknown run time counts as cheap.
            keep.sort(
                key=lambda r: (
                    (r["run_seconds"] or 0.0) / max(r["size"] or 1, 1),
                    r["last_access"] or 0,
                )
            )
            for row in keep:
                if total <= max_bytes:
                    break
                total -= row["size"] or 0
                evict(row)
        local.clean_staging()
        return {"evicted": len(evicted), "bytes_freed": freed}

    def stats(self) -> dict[str, Any]:
        found = self.index.stats() if self.index else {}
        found["memory"] = {"entries": len(self.memory), "bytes": self.memory.nbytes}
        found["tiers"] = [
            {"name": t.name, "root": str(getattr(t, "root", "")), "read_only": t.read_only}
            for t in self.tiers
        ]
        return found


def _display(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as readable JSON (for ``ls``/``show``; the signature uses canonical forms)."""
    import json

    out = {}
    for k, v in params.items():
        try:
            json.dumps(v, allow_nan=False)
            out[k] = v
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out


_DEFAULT: dict[tuple[str, str], Cache] = {}
_DEFAULT_LOCK = threading.Lock()


def default_cache() -> Cache:
    """The process-wide cache for the current cache and state directories."""
    key = (str(paths.cache_dir()), str(paths.state_dir()))
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = Cache.open()
        return _DEFAULT[key]
