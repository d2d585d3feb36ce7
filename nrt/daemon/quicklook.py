"""The pointing stage: when a pointing's inputs are complete, run its quick-look graph.

The graph (quick-look products and health checks, built by the ``pointing_graph``
hook) runs off the event loop on a thread pool, at most ``concurrency`` pointings
at a time; cached results are restored by signature, so a pointing announced
again (a late chunk) recomputes only what the new files change. Health-check
reports feed the Prometheus gauges and the retained ``<prefix>/health/<instrument>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrt import metrics
from nrt.cache import Cache
from nrt.daemon import memory
from nrt.element import AnalysisException
from nrt.execute import LocalExecutor
from nrt.plugins import MissingHook, hook

log = logging.getLogger(__name__)

STATUS_NAMES = {0: "ok", 1: "warning", 2: "alarm"}


@dataclass
class PointingResult:
    pointing: str
    outcome: str  # ok, expected_failure, error, skipped
    seconds: float
    reports: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    products: dict[str, Any] = field(default_factory=dict)
    #: made from an open pointing (its record never closed): span up to the last chunk
    provisional: bool = False


class PointingStage:
    """Runs per-pointing graphs with bounded concurrency."""

    def __init__(
        self,
        config: Any,
        cache: Cache,
        publish_health: Callable[[str, dict], Awaitable[None]] | None = None,
        products: Path | None = None,
        done: Path | None = None,
    ) -> None:
        self.config = config
        self.products = products
        #: One file per pointing holding the digest of the file set its quick-look last
        #: finished with; the daemon hands on again, at start, what a crash cut short.
        self.done_dir = done
        self.cache = cache
        self.publish_health = publish_health
        self.executor = LocalExecutor(max_workers=2)
        self._slots = asyncio.Semaphore(config.quicklook.concurrency)
        self._tasks: set[asyncio.Task] = set()
        self.results: list[PointingResult] = []
        # Imported here, on the loop, at start-up (before READY): importing the science
        # packages on a thread while the loop imports others could fail under load
        # (a concurrent-import deadlock is reported as an ImportError).
        try:
            self.builder = hook("pointing_graph") if config.quicklook.enabled else None
        except MissingHook as exc:
            log.warning("quick-look disabled: %s", exc)
            self.builder = None

    def submit(self, ready: Any) -> None:
        """Schedule a ready pointing (returns at once)."""
        task = asyncio.create_task(self._run(ready), name=f"quicklook-{ready.pointing}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for scheduled pointings; False if some were still running at the timeout."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    async def _run(self, ready: Any) -> None:
        if self.builder is None:
            return
        async with self._slots:
            started = time.perf_counter()
            try:
                result = await asyncio.to_thread(self._compute, ready)
            except Exception as exc:  # logged with its traceback, counted; the daemon goes on
                log.exception("quick-look of pointing %s failed", ready.pointing)
                result = PointingResult(ready.pointing, "error", 0.0, message=str(exc))
            result.seconds = time.perf_counter() - started
            metrics.QUICKLOOK_RUNS.labels(result.outcome).inc()
            metrics.QUICKLOOK_SECONDS.observe(result.seconds)
            if result.outcome != "error":
                await asyncio.to_thread(self._mark_done, ready)  # a file write: off the loop
            await self._publish(result)
            result.reports = [_verdict(r) for r in result.reports]
            self.results.append(result)

    def done(self, pointing: str) -> str | None:
        """The digest of the file set `pointing`'s quick-look last finished with."""
        if self.done_dir is None:
            return None
        try:
            return (self.done_dir / pointing).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _mark_done(self, ready: Any) -> None:
        if self.done_dir is None:
            return
        try:
            self.done_dir.mkdir(parents=True, exist_ok=True)
            staging = self.done_dir / f".{ready.pointing}.tmp"
            staging.write_text(ready.digest)
            staging.replace(self.done_dir / ready.pointing)
        except OSError as exc:  # only costs a repeated quick-look after a restart
            log.warning("could not record pointing %s as done: %s", ready.pointing, exc)

    def _compute(self, ready: Any) -> PointingResult:
        try:
            work = self.builder(ready, self.config)
        except AnalysisException as exc:  # e.g. a pointing without imager data
            return PointingResult(ready.pointing, "expected_failure", 0.0, message=str(exc))
        elements = list(getattr(work, "elements", work))
        # the pointing's graphs share nodes through the memory tier; no later pointing
        # asks for them (their cached results stay on the local tier), so let them go
        try:
            with self.cache.memory.hold(_signatures(elements)):
                return self._run_graphs(ready, work, elements)
        finally:
            # its arrays are freed now: hand the pages back at once, not at the next
            # minute's trim (a replay runs hours of data in a minute)
            del work, elements
            memory.trim()

    def _run_graphs(self, ready: Any, work: Any, elements: list[Any]) -> PointingResult:
        reports: list[dict[str, Any]] = []
        failures = []
        for element in elements:
            try:
                element.get(cache=self.cache, executor=self.executor)
            except AnalysisException as exc:
                failures.append(str(exc))
                continue
            report = getattr(element, "report", None)
            if isinstance(report, dict) and "check" in report:
                reports.append(report)
        for report in reports:
            try:
                metrics.publish_check(report)
            except (KeyError, ValueError) as exc:
                log.error("health report of %s not exported: %s", report.get("check"), exc)
        outcome = "expected_failure" if failures else "ok"
        result = PointingResult(ready.pointing, outcome, 0.0, reports, "; ".join(failures))
        result.provisional = any(getattr(e, "provisional", False) for e in elements)
        if result.provisional:
            log.warning(
                "pointing %s: its record is not closed (handed on by %s); provisional "
                "products up to its last chunk, done again when the record closes",
                ready.pointing,
                ready.reason,
            )
        if not failures and self.products is not None and hasattr(work, "write"):
            result.products = work.write(self.products / ready.pointing)
        return result

    async def _publish(self, result: PointingResult) -> None:
        by_instrument: dict[str, dict[str, Any]] = {}
        for report in result.reports:
            instrument = str(report.get("instrument", "unknown"))
            summary = by_instrument.setdefault(
                instrument, {"pointing": result.pointing, "checks": {}, "status": "ok"}
            )
            if result.provisional:
                summary["provisional"] = True
            status = _worst(report)
            summary["checks"][report["check"]] = STATUS_NAMES.get(status, str(status))
            if status > _rank(summary["status"]):
                summary["status"] = STATUS_NAMES.get(status, str(status))
        if self.publish_health is None:
            return
        for instrument, summary in by_instrument.items():
            try:
                await self.publish_health(instrument, summary)
            except Exception as exc:  # the broker may be away: health is retained, latest wins
                log.warning("health summary for %s not published: %s", instrument, exc)


def _signatures(elements: list[Any]) -> set[str]:
    """Every node's signature in the pointing's graphs (a graph whose signature cannot be
    computed is left out: running it reports why)."""
    found: set[str] = set()
    for top in elements:
        try:
            found.update(e.signature for e in top.walk())
        except Exception:  # element.get() raises it again, with context
            continue
    return found


def _rank(name: str) -> int:
    return {v: k for k, v in STATUS_NAMES.items()}.get(name, 0)


def _worst(report: dict[str, Any]) -> int:
    """A check's overall status: the worst of its modules' (0 ok, 1 warning, 2 alarm)."""
    modules = report.get("modules") or {}
    return max((int(v) for v in modules.values()), default=int(report.get("status", 0)))


#: What a pointing result keeps of each health report once it is published: the verdicts.
VERDICT_KEYS = ("check", "instrument", "status", "modules")


def _verdict(report: dict[str, Any]) -> dict[str, Any]:
    """A report without its measurements (~100 kB a pointing: spectra, per-pixel and
    per-module values), which are in the metrics, the health message and the products
    already; the daemon keeps up to ``RECENT`` results, for months."""
    return {k: report[k] for k in VERDICT_KEYS if k in report}
