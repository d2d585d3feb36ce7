"""Running element graphs on a Dask distributed cluster (DESIGN.md sections 1 and 10).

The client resolves every graph (all signatures, nothing computed), asks the
cache tiers which results already exist, and submits only the missing elements,
one Dask task per distinct signature, with the tasks of its missing inputs as
dependencies. So independent pointings and branches run in parallel, a result
shared by many pointings (a calibration) runs once, and a second run submits
nothing. The Dask key is ``<Element>-<signature>``: deterministic, so two
clients asking the same scheduler for the same result share one task, and the
element name groups tasks on the dashboard.

Workers open the shared cache from a small ``CacheSpec`` (a directory on shared
storage, and/or iRODS), read the inputs that were already cached from it, write
what they compute into it (atomically; single flight across processes), and
return only the manifest. The client records those in its index: SQLite stays
on one machine. Outputs of elements with ``cached = False`` are not stored:
they travel to their users as Dask task results (Dask's own serialization,
within the cluster), and are computed once like the others.

A worker that dies mid-task loses nothing that was stored: writes are atomic,
the flock is released with the process, and the scheduler runs the task again
on another worker (up to ``distributed.scheduler.allowed-failures`` times).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nrt import signature as sig
from nrt.cache import Cache, LocalTier, MemoryTier
from nrt.element import AnalysisException, Element
from nrt.execute import ElementError, LocalExecutor, compute, run

log = logging.getLogger(__name__)


class RemoteElementError(RuntimeError):
    """An element failed on a worker (unexpected exception; not cached).

    Carries only strings so it crosses processes intact.
    """

    def __init__(self, message: str, element: str = "", signature: str = "") -> None:
        super().__init__(message)
        self.element = element
        self.signature = signature

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.element, self.signature))


def local_cluster(n_workers: int | None = None, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` of single-threaded worker processes, tuned for numpy.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` in their workers, which
    makes glibc map and unmap every array above 128 KiB afresh: on this graph's
    FFTs it cost three times the CPU of the same code in a plain process. nrt's
    elements allocate exactly such temporaries, so the local cluster leaves
    glibc's default. (On a remote cluster, set
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` in the
    workers' Dask configuration for the same effect.)
    """
    import dask
    from distributed import LocalCluster

    options = {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": ":0",
        **kwargs,
    }
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**options)


# ---------------------------------------------------------------- worker side


@dataclass(frozen=True)
class CacheSpec:
    """How a worker opens the shared cache; small and picklable.

    ``cache_dir`` is the cache root every worker can reach (shared storage).
    With ``irods_collection`` set and ``shared_dir`` False, the directory is a
    worker-local scratch and every result is also written to iRODS, which is
    then the shared store.
    """

    cache_dir: str
    shared_dir: bool = True
    irods_collection: str | None = None
    irods_env_file: str | None = None
    memory_bytes: int = 256 << 20
    archive_dirs: tuple[str, ...] = ()  # read-only directory tiers (shared archives)

    @classmethod
    def of(cls, cache: Cache) -> CacheSpec:
        """The spec matching a client's cache: its local directory and its iRODS tier."""
        from nrt.cache.irods import IrodsTier  # light: python-irodsclient is imported lazily

        local = cache.local
        if local is None:
            raise ValueError("distributed runs need a writable local (shared) cache directory")
        irods = next((t for t in cache.tiers if isinstance(t, IrodsTier) and not t.read_only), None)
        archives = tuple(
            str(t.root) for t in cache.tiers if isinstance(t, LocalTier) and t.read_only
        )
        return cls(
            cache_dir=str(local.root),
            irods_collection=irods.collection if irods else None,
            irods_env_file=str(irods.env_file) if irods else None,
            archive_dirs=archives,
        )

    @property
    def shared_tiers(self) -> list[str]:
        """Tier names (as the client names them) that a worker's writes land in."""
        return (["local"] if self.shared_dir else []) + (["irods"] if self.irods_collection else [])

    def open(self) -> Cache:
        """This process's cache for the spec (one per worker process, kept)."""
        with _WORKER_LOCK:
            cache = _WORKER_CACHES.get(self)
            if cache is None:
                root = LocalTier(self.cache_dir)
                tiers: list[Any] = [root]
                tiers += [LocalTier(d, read_only=True, name="archive") for d in self.archive_dirs]
                if self.irods_collection:
                    from nrt.cache.irods import IrodsTier

                    tiers.append(IrodsTier(self.irods_collection, env_file=self.irods_env_file))
                cache = _WORKER_CACHES[self] = Cache(
                    tiers,
                    index=None,  # the client records results in its index
                    memory=MemoryTier(self.memory_bytes),
                    lock_dir=root.root / ".locks",
                    # iRODS as the shared store: every result goes there before the task ends.
                    replicate_seconds_per_mib=0.0 if self.irods_collection else None,
                    replicate_in_background=False,
                )
            return cache


_WORKER_CACHES: dict[CacheSpec, Cache] = {}
_CHECKED: set[type] = set()
_WORKER_LOCK = threading.Lock()


def _summary(element: Element, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "signature": element.signature,
        "element": type(element).__qualname__,
        "pointing": element.pointing,
        "status": status,
        "pid": os.getpid(),
        **extra,
    }


def run_element(element: Element, spec: CacheSpec, *deps: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: compute one element whose missing inputs arrive as `deps`.

    Inputs that were cached before the run are read from the shared cache. A
    failed (negative) input fails this element without running it. Returns a
    summary: the manifest for stored results, the outputs for unstored ones.
    """
    expected = element.signature
    actual = expected if type(element) in _CHECKED else sig.merkle(element.components())
    if actual != expected:
        raise RemoteElementError(
            f"{type(element).__qualname__}: the worker computes signature {actual[:12]} where "
            f"the client computed {expected[:12]}; workers must run the same code and versions",
            type(element).__qualname__,
            expected,
        )
    _CHECKED.add(type(element))  # the code is the same for every instance: check it once
    cache = spec.open()
    given = {d["signature"]: d for d in deps}
    for child in element.inputs.values():
        found = given.get(child.signature)
        if found is None or found["status"] != "failed":
            if found is not None and found.get("outputs") is not None:
                child._set_outputs(found["outputs"])  # not stored: it came with the task
                continue
            entry = cache.lookup(child.signature, persistent=True)
            if entry is None:  # removed or damaged since it was written: make it again here
                run(child, cache=cache, executor=LocalExecutor(max_workers=1))
                continue
            if not entry.failed:
                child._set_outputs(entry.outputs or {})
                continue
            found = {"status": "failed", "error": entry.manifest.get("error")}
        name = type(child).__qualname__
        return _summary(element, "failed", error=f"input {name} failed: {found['error']}")
    if type(element).cached:
        # The client found no stored copy; one in this worker's memory would not reach the
        # shared store, so it does not count.
        cache.memory.delete(element.signature)
    started = time.time()
    try:
        entry = compute(element, cache)
    except ElementError as exc:
        raise RemoteElementError(str(exc), exc.element_name, exc.signature) from None
    persistent = type(element).cached
    return _summary(
        element,
        "failed" if entry.failed else "ok",
        error=entry.manifest.get("error"),
        ran=entry.manifest.get("created", 0) >= started,
        run_seconds=entry.manifest.get("run_seconds"),
        manifest=entry.manifest if persistent else None,
        tiers=spec.shared_tiers if persistent else [],
        outputs=None if persistent else entry.outputs,
    )


# ---------------------------------------------------------------- client side


@dataclass
class Task:
    """One distinct signature to compute (the first instance met stands for all)."""

    signature: str
    element: Element
    deps: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{type(self.element).__qualname__}-{self.signature}"


@dataclass
class Plan:
    """What a run needs: tasks in dependency order, and what was already held."""

    targets: list[Element]
    tasks: dict[str, Task]
    held: set[str]
    elements: dict[str, Element]


@dataclass
class Report:
    """The outcome of a distributed run."""

    planned: int = 0
    held: int = 0
    submitted: int = 0
    ok: int = 0
    failed: int = 0  # expected failures (AnalysisException), cached as negative results
    errors: dict[str, str] = field(default_factory=dict)  # signature -> message
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "held": self.held,
            "submitted": self.submitted,
            "ok": self.ok,
            "failed": self.failed,
            "errors": len(self.errors),
            "seconds": round(self.seconds, 3),
        }


def held_in(cache: Cache, signature: str) -> bool:
    """Whether a storage tier holds a usable result (an expired negative one is not)."""
    row = cache.index.get(signature) if cache.index else None
    if row and row["status"] == "failed" and row["expires"] and row["expires"] < time.time():
        return False
    return any(tier.has(signature) for tier in cache.tiers)


def plan(targets: Iterable[Element], cache: Cache) -> Plan:
    """Resolve the graphs of `targets`; stop the walk at results a tier already holds.

    Elements with ``cached = False`` are never held (they live in memory only),
    so they are submitted whenever something missing needs them.
    """
    targets = list(targets)
    tasks: dict[str, Task] = {}
    held: set[str] = set()
    elements: dict[str, Element] = {}

    def visit(element: Element) -> bool:
        """True when `element`'s result must be computed (so it is a task)."""
        signature = element.signature
        if signature in tasks:
            return True
        if signature in held:
            return False
        elements[signature] = element
        if type(element).cached and held_in(cache, signature):
            held.add(signature)
            return False
        deps = [child.signature for child in element.inputs.values() if visit(child)]
        tasks[signature] = Task(signature, element, sorted(set(deps)))
        return True

    for target in targets:
        visit(target)
    return Plan(targets, tasks, held, elements)


class DaskExecutor:
    """Runs element graphs on a Dask distributed cluster through `client`."""

    def __init__(self, client: Any, spec: CacheSpec | None = None) -> None:
        self.client = client
        self.spec = spec

    def run(self, target: Element, cache: Cache) -> None:
        """``nrt.execute.run`` compatible: compute `target` on the cluster, then restore it."""
        report = self.reprocess([target], cache)
        if target.signature in report.errors:
            raise RemoteElementError(report.errors[target.signature])
        result = report.results.get(target.signature)
        if result is not None and result.get("outputs") is not None:
            target._set_outputs(result["outputs"])
            return
        if result is not None and result["status"] == "failed":
            raise AnalysisException(result.get("error"))
        entry = cache.lookup(target.signature, persistent=type(target).cached)
        if entry is None:
            raise RemoteElementError(f"{type(target).__qualname__}: result not found after the run")
        if entry.failed:
            raise AnalysisException(entry.manifest.get("error"))
        target._set_outputs(entry.outputs or {})

    def reprocess(
        self,
        targets: Iterable[Element],
        cache: Cache,
        progress: Callable[[dict[str, Any], Report], None] | None = None,
    ) -> Report:
        """Compute whatever `targets` need that no tier holds; record results in the index."""
        from distributed import as_completed

        started = time.perf_counter()
        spec = self.spec or CacheSpec.of(cache)
        targets = list(targets)
        found = plan(targets, cache)
        cache.remember_graph(list(found.elements.values()))
        report = Report(planned=len(found.elements), held=len(found.held))
        futures: dict[str, Any] = {}
        for signature, task in found.tasks.items():  # inputs were added before their users
            futures[signature] = self.client.submit(
                run_element,
                task.element,
                spec,
                *[futures[d] for d in task.deps],
                key=task.key,
                pure=False,
                retries=0,  # a deterministic error would fail again; lost workers are retried
            )
        report.submitted = len(futures)
        by_key = {f.key: s for s, f in futures.items()}
        pending: list[tuple[dict[str, Any], list[str]]] = []
        flushed = time.monotonic()
        # Results are gathered as tasks finish, concurrently (one blocking fetch per
        # result would make the client the bottleneck of a large run).
        completed = as_completed(
            list(futures.values()),
            loop=self.client.loop,  # not the default client's: a process may hold several
            with_results=True,
            raise_errors=False,
        )
        for future, result in completed:
            signature = by_key[future.key]
            futures.pop(signature)  # the scheduler keeps it while dependents need it
            event = self._collect(future, result, signature, found, report, pending)
            if len(pending) >= 200 or time.monotonic() - flushed > 1.0:
                self._record(cache, pending)
                flushed = time.monotonic()
            if progress is not None:
                progress(event, report)
        self._record(cache, pending)
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _record(cache: Cache, pending: list[tuple[dict[str, Any], list[str]]]) -> None:
        """Index what workers stored, in batches (one SQLite write per result was the
        client's bottleneck)."""
        if cache.index is not None and pending:
            cache.index.record_many(pending)
        pending.clear()

    def _collect(
        self,
        future: Any,
        result: Any,
        signature: str,
        found: Plan,
        report: Report,
        pending: list[tuple[dict[str, Any], list[str]]],
    ) -> dict[str, Any]:
        element = found.elements[signature]
        base = {
            "element": type(element).__qualname__,
            "signature": signature,
            "pointing": element.pointing,
        }
        if future.status == "error" or isinstance(result, BaseException):
            exc = result if isinstance(result, BaseException) else future.exception()
            origin = getattr(exc, "signature", "") or signature
            message = str(exc) if origin == signature else f"upstream failed: {exc}"
            report.errors[signature] = message
            return {**base, "status": "error", "error": message}
        report.results[signature] = result
        if result["status"] == "failed":
            report.failed += 1
        else:
            report.ok += 1
        if result.get("manifest"):
            pending.append((result["manifest"], result["tiers"]))
        return {
            **base,
            "status": result["status"],
            "error": result.get("error"),
            "ran": result.get("ran", False),
            "run_seconds": result.get("run_seconds"),
            "pid": result.get("pid"),
        }
