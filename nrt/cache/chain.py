"""The cache chain: memory, then storage tiers by cost; one index; single flight.

Lookup takes the cheapest tier that holds a signature (skipping a tier whose
transfer would cost more than recomputing, when the run time is known); a hit
is copied into every faster writable tier. New results go to memory and, for
elements with ``cached = True``, to the first writable storage tier (local),
recorded in the index; results whose compute time per byte is high are then
replicated upward (to the slower, shared tiers such as iRODS), in the
background by default. Tiers may be read-only (a shared archive): they are read,
never written or cleaned. Each tier's measured latency and bandwidth are kept in
the index (``tier_stats``) so the estimates survive restarts. A corrupt entry is
removed, counted, logged, and treated as a miss.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from dataclasses import dataclass
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

#: Results costing at least this many compute seconds per MiB are replicated upward.
REPLICATE_SECONDS_PER_MIB = 1.0
#: Tier statistics are written to the index at most this often (seconds) per tier.
STATS_SAVE_INTERVAL = 5.0
#: gc keeps the components (for ``nrt cache why``) of this many signatures whose products
#: were evicted, the most recent first; those with a product are always kept.
SIGNATURES_KEPT = 2000


@dataclass
class FetchOption:
    """One tier's part in a lookup decision (what ``nrt cache show`` prints)."""

    tier: Tier
    seconds: float
    decision: str  # "try" or "skip: <reason>"


class Cache:
    """What the executor talks to: lookup, store, single flight, maintenance."""

    def __init__(
        self,
        tiers: list[Tier],
        index: Index | None = None,
        memory: MemoryTier | None = None,
        lock_dir: Path | None = None,
        replicate_seconds_per_mib: float | None = REPLICATE_SECONDS_PER_MIB,
        replicate_in_background: bool = True,
    ) -> None:
        self.memory = memory if memory is not None else MemoryTier()
        self.tiers = list(tiers)
        self.index = index
        self.single_flight = SingleFlight(lock_dir)
        self.replicate_seconds_per_mib = replicate_seconds_per_mib
        self.replicate_in_background = replicate_in_background
        self._replicator: cf.ThreadPoolExecutor | None = None
        self._replications: list[cf.Future] = []
        self._stats_saved: dict[str, float] = {}
        self._remembered: set[str] = set()
        #: The daemon sets this: a result that cannot be written (full disk) is kept in
        #: memory only, logged and counted, and the graph goes on; else the error propagates.
        self.degrade_on_write_error = False
        self._load_tier_stats()
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
        memory_bytes: int = 64 << 20,
        remote: list[Tier] | None = None,
    ) -> Cache:
        """The standard chain: memory + local directory (+ `remote` tiers), index in the state
        directory. With `remote` None, the iRODS tier joins when ``NRT_IRODS_COLLECTION`` is set."""
        root = paths.cache_dir(cache_dir)
        index = Index(paths.state_dir(state_dir) / "index.db")
        if remote is None:
            remote = _remote_from_environment()
        return cls(
            [LocalTier(root), *remote], index, MemoryTier(memory_bytes), lock_dir=root / ".locks"
        )

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
        for option in self.fetch_plan(signature):
            tier = option.tier
            if option.decision != "try":
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

    def fetch_plan(self, signature: str) -> list[FetchOption]:
        """Storage tiers in the order lookup tries them, each with its cost and decision.

        Cheapest first, by each tier's measured latency and bandwidth for the
        result's size (from the index). A tier other than the local one is
        skipped when fetching from it would take longer than the recorded run
        time: computing again is cheaper. Unknown size or run time: fetch.
        """
        row = self.index.get(signature) if self.index else None
        size = row["size"] if row and row["size"] else 0
        run_seconds = row["run_seconds"] if row else None
        options = []
        for tier in sorted(self.tiers, key=lambda t: t.cost(size)):
            seconds = tier.cost(size)
            decision = "try"
            if run_seconds is not None and tier is not self.local and seconds > run_seconds:
                decision = f"skip: recomputing ({run_seconds:.3g} s) is cheaper"
            options.append(FetchOption(tier, seconds, decision))
        return options

    def _get_from(self, tier: Tier, signature: str) -> Entry | None:
        samples = _samples(tier)
        try:
            entry = tier.get(signature)
        except products.CorruptProduct as exc:
            metrics.CACHE_REQUESTS.labels(tier.name, "corrupt").inc()
            log.error("corrupt cache entry in tier %s: %s; removed, will recompute", tier.name, exc)
            self._remove(tier, signature)
            return None
        if entry is None:
            metrics.CACHE_REQUESTS.labels(tier.name, "miss").inc()
        elif _samples(tier) != samples:
            self._save_tier_stats(tier)
        return entry

    def _remove(self, tier: Tier, signature: str) -> None:
        if self.index:
            self.index.forget(signature, tier.name)
        if not tier.read_only:
            tier.delete(signature)

    def _promote(self, entry: Entry, source: Tier) -> None:
        """Copy a hit into every writable tier faster than its source (local first), then memory."""
        if not entry.failed:
            nbytes = entry.nbytes
            faster = [
                t
                for t in self.tiers
                if t is not source
                and not t.read_only
                and (t is self.local or t.cost(nbytes) < source.cost(nbytes))
            ]
            for tier in sorted(faster, key=lambda t: t.cost(nbytes)):
                try:
                    tier.put(entry)
                    if self.index:
                        self.index.record(entry.manifest, tier.name)
                except (CacheWriteError, OSError) as exc:
                    metrics.CACHE_WRITE_ERRORS.labels(tier.name).inc()
                    log.warning(
                        "could not copy %s into tier %s: %s", entry.signature[:12], tier.name, exc
                    )
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
            self._persist_or_degrade(entry)
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
            self._persist_or_degrade(entry)
        self.memory.put(entry)
        return entry

    def _persist_or_degrade(self, entry: Entry) -> None:
        try:
            self._persist(entry)
        except CacheWriteError as exc:
            if not self.degrade_on_write_error:
                raise
            log.error("cache write failed; result kept in memory only, going on: %s", exc)

    def _persist(self, entry: Entry) -> None:
        """Write to the local tier (else the first writable one); replicate upward if costly."""
        first = self.local or next((t for t in self.tiers if not t.read_only), None)
        if first is None:
            return
        try:
            first.put(entry)
        except CacheWriteError:
            metrics.CACHE_WRITE_ERRORS.labels(first.name).inc()
            raise
        if self.index:
            self.index.record(entry.manifest, first.name)
        upward = [t for t in self.tiers if t is not first and not t.read_only]
        if upward and self._worth_replicating(entry):
            if self.replicate_in_background:
                if self._replicator is None:
                    self._replicator = cf.ThreadPoolExecutor(1, thread_name_prefix="nrt-replicate")
                self._replications = [f for f in self._replications if not f.done()]
                self._replications.append(self._replicator.submit(self._replicate, entry, upward))
            else:
                self._replicate(entry, upward, raise_errors=True)

    def _worth_replicating(self, entry: Entry) -> bool:
        """Compute seconds per MiB at or above the threshold (negative results are not)."""
        if self.replicate_seconds_per_mib is None or entry.failed:
            return False
        run_seconds = entry.manifest.get("run_seconds") or 0.0
        mib = max(entry.nbytes, 1) / (1 << 20)
        return run_seconds / mib >= self.replicate_seconds_per_mib

    def _replicate(self, entry: Entry, tiers: list[Tier], raise_errors: bool = False) -> list[str]:
        """Put `entry` into `tiers` (slower, shared ones); returns the names that took it."""
        done = []
        for tier in tiers:
            try:
                tier.put(entry)
            except Exception as exc:
                metrics.CACHE_WRITE_ERRORS.labels(tier.name).inc()
                if raise_errors:
                    raise
                log.warning("replicating %s to %s failed: %s", entry.signature[:12], tier.name, exc)
                continue
            done.append(tier.name)
            if self.index:
                self.index.record(entry.manifest, tier.name)
        return done

    def wait_replication(self, timeout: float | None = None) -> None:
        """Block until background replications queued so far have finished."""
        cf.wait(list(self._replications), timeout=timeout)

    def close(self) -> None:
        """Finish replications and save the tiers' measured costs."""
        self.wait_replication()
        if self._replicator is not None:
            self._replicator.shutdown(wait=True)
            self._replicator = None
        for tier in self.tiers:
            self._save_tier_stats(tier, force=True)

    # ------------------------------------------------------------ measured costs

    def _load_tier_stats(self) -> None:
        """Start each tier's estimates from what earlier processes measured."""
        if self.index is None:
            return
        saved = self.index.tier_stats()
        for tier in self.tiers:
            stats, row = getattr(tier, "stats", None), saved.get(tier.name)
            if stats is not None and row and row["samples"]:
                stats.latency_s = row["latency_s"]
                stats.bandwidth_bps = row["bandwidth_bps"]
                stats.samples = row["samples"]
                # Saved averages are not a first guess: new transfers move them gradually.
                stats.latency_samples = stats.bandwidth_samples = row["samples"]

    def _save_tier_stats(self, tier: Tier, force: bool = False) -> None:
        stats = getattr(tier, "stats", None)
        if self.index is None or stats is None or not stats.samples:
            return
        now = time.monotonic()
        if not force and now - self._stats_saved.get(tier.name, -1e9) < STATS_SAVE_INTERVAL:
            return
        self._stats_saved[tier.name] = now
        self.index.save_tier_stats(tier.name, stats.latency_s, stats.bandwidth_bps, stats.samples)

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
        forgotten = self.index.prune_signatures(SIGNATURES_KEPT) or 0
        self._remembered.clear()  # bounded too; a graph seen again is remembered again
        return {"evicted": len(evicted), "bytes_freed": freed, "signatures_forgotten": forgotten}

    def stats(self) -> dict[str, Any]:
        found = self.index.stats() if self.index else {}
        found["memory"] = {"entries": len(self.memory), "bytes": self.memory.nbytes}
        found["tiers"] = [
            {"name": t.name, "root": str(getattr(t, "root", "")), "read_only": t.read_only}
            for t in self.tiers
        ]
        return found


def _samples(tier: Tier) -> int:
    stats = getattr(tier, "stats", None)
    return stats.samples if stats is not None else 0


def _remote_from_environment() -> list[Tier]:
    """Tiers beyond the local one, from the environment: ``NRT_CACHE_ARCHIVE`` (a directory
    read only, e.g. a shared archive) and the iRODS tier when ``NRT_IRODS_COLLECTION`` names
    a collection (python-irodsclient is imported only then)."""
    import os

    tiers: list[Tier] = []
    archive = os.environ.get("NRT_CACHE_ARCHIVE")
    if archive:
        tiers.append(LocalTier(archive, read_only=True, name="archive"))
    if os.environ.get("NRT_IRODS_COLLECTION"):
        from nrt.cache.irods import IrodsTier

        tiers.append(IrodsTier.from_environment())
    return tiers


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
