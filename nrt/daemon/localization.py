"""The localization stage: imager events around a trigger -> a sky position -> an alert update.

Keeps the last ``keep`` seconds of ISGRI events (bounded memory) and the
attitude of each pointing. A trigger asks for the burst interval; once the
events cover it (or ``wait`` seconds pass, or the replay ends), the coded-mask
localization (the ``localize`` hook) runs off the loop, and a position whose
image significance reaches ``min_significance`` inside the field of view is sent
as an update of the alert (record_number 2).

Restart safety: before a new alert is committed to the outbox (``guard`` wraps the
outbox's submit), its localization is recorded as pending in
``<state>/localizations.sqlite``; the record is marked resolved when the update is
committed or the localization is declared impossible (no data or attitude, too
faint, ambiguous, the alert retracted). At start, ``resume`` takes the pending ones
up again: the alert's latest revision comes from the outbox (nothing is asked for an
alert that never got committed, or that already carries a position), and the imager
chunks and attitude it needs are read back through the ingest log; the update is
derived from that latest revision, so its record number continues the alert's and
it is never issued under a new id. The record is written with ``synchronous=NORMAL``
(WAL): it survives a killed process; a power cut in the instant between it and the
outbox commit could lose the request (not the alert).

``NRT_TEST_LOCALIZE_DELAY`` (seconds, tests only) holds every localization that
long before it runs, so a test can kill the daemon while one is under way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from nrt import metrics, statedb
from nrt.alerts.model import Alert, Localization
from nrt.plugins import MissingHook, hook
from nrt.telemetry.errors import TelemetryError
from nrt.telemetry.formats import MJDREF_IJD, read_chunk
from nrt.telemetry.ingestthread import AsyncIngestLog

log = logging.getLogger(__name__)


#: Test-only knob: seconds every localization waits before it runs (see the docstring).
DELAY_ENV = "NRT_TEST_LOCALIZE_DELAY"
#: Resolved records are kept this long (s), so a restart does not localize them again.
KEEP_RESOLVED = 2 * 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS localizations (
    id TEXT PRIMARY KEY,      -- the alert's id
    state TEXT NOT NULL,      -- pending, or resolved
    request TEXT NOT NULL,    -- JSON: trigger_time_met, timescale, pointing, trigger_time
    outcome TEXT,             -- what resolved it (update record n, or why no position)
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS localizations_state ON localizations (state);
"""


class PendingLocalizations:
    """The durable record of localizations asked for and not yet resolved (one SQLite
    file; the stage opens, uses and closes it on its own thread only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = statedb.open_or_reset(
            self.path, _SCHEMA, "localizations", damaged=self._damaged, threads=True
        )

    def _damaged(self, exc: sqlite3.DatabaseError, aside: Path) -> None:
        # Only localization requests are at stake (the alerts are in the outbox).
        log.error(
            "localization record %s is damaged (%s); moved to %s, starting afresh "
            "(localizations pending before are not resumed)",
            self.path,
            exc,
            aside,
        )
        metrics.STATE_REPAIRS.labels("localizations", "reset").inc()

    def expect(self, alert: Alert) -> None:
        """Record a pending localization for a new alert (kept as is if already known)."""
        request = {
            "trigger_time": alert.trigger_time,
            "trigger_time_met": alert.trigger_time_met,
            "timescale": alert.rate_duration,
            "pointing": alert.pointing,
        }
        now = time.time()
        self.db.execute(
            "INSERT OR IGNORE INTO localizations VALUES (?, 'pending', ?, NULL, ?, ?)",
            (alert.id, json.dumps(request), now, now),
        )

    def resolve(self, alert_id: str, outcome: str) -> None:
        self.db.execute(
            "UPDATE localizations SET state='resolved', outcome=?, updated=? WHERE id=?",
            (outcome, time.time(), alert_id),
        )

    def forget(self, alert_id: str) -> None:
        self.db.execute("DELETE FROM localizations WHERE id=?", (alert_id,))

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self.db.execute(
            "SELECT id, request FROM localizations WHERE state='pending' ORDER BY created"
        ).fetchall()
        return [(alert_id, json.loads(request)) for alert_id, request in rows]

    def state(self, alert_id: str) -> tuple[str, str | None] | None:
        row = self.db.execute(
            "SELECT state, outcome FROM localizations WHERE id=?", (alert_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def prune(self, keep: float = KEEP_RESOLVED) -> int:
        cur = self.db.execute(
            "DELETE FROM localizations WHERE state='resolved' AND updated < ?",
            (time.time() - keep,),
        )
        return cur.rowcount

    def close(self) -> None:
        self.db.close()


@dataclass
class _Request:
    record: Any  # AlertRecord
    interval: tuple[float, float]
    background: tuple[float, float]
    pointing: str | None
    asked: float
    #: imager chunks read back from the ingest log (a request resumed after a restart)
    chunks: list[Any] = field(default_factory=list)
    #: completed from the ingest log (resumed after a restart, or asked for soon after
    #: one): its pointing record may come in after the read-back, so it also waits for
    #: the attitude (up to ``wait``)
    resumed: bool = False

    @property
    def covered_until(self) -> float:
        return max((c.tstop for c in self.chunks), default=-np.inf)


class LocalizationStage:
    def __init__(
        self,
        revise: Callable[[Any, Callable[[Alert], Alert]], Awaitable[Alert | None]],
        *,
        keep: float = 600.0,
        wait: float = 60.0,
        min_significance: float = 6.0,
        state: Path | None = None,
    ) -> None:
        self.revise = revise
        self.keep = keep
        self.wait = wait
        self.min_significance = min_significance
        self._chunks: deque = deque()
        self._covered_until = -np.inf
        self._attitudes: dict[str, tuple[float, float, float]] = {}
        #: the first imager data this process saw (earlier data are in the ingest log)
        self._first_isgri = np.inf
        #: the ingest log (given at ``resume``), to read back what an earlier life ingested
        self._ingest: Any = None
        self._draining = False
        #: requests reading back from the ingest log (``_complete``)
        self._completing: list[_Request] = []
        self._pending: list[_Request] = []
        self._tasks: set[asyncio.Task] = set()
        self.updates: list[Alert] = []
        self._requested: set[str] = set()  # alert ids asked for in this process
        self.delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        if self.delay:
            log.warning(
                "%s=%s: every localization waits that long (tests only)", DELAY_ENV, self.delay
            )
        try:
            self._localize = hook("localize")
        except MissingHook as exc:
            log.warning("localization disabled: %s", exc)
            self._localize = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nrt-localization")
        #: the durable record of pending localizations (None: not restart-safe, e.g. tests);
        #: opened on its thread (the caller waits: this is start-up)
        self.store = (
            self._pool.submit(PendingLocalizations, state / "localizations.sqlite").result()
            if state is not None and self._localize is not None
            else None
        )

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A call on the record, on its own thread (the loop never waits on SQLite)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def guard(
        self, submit: Callable[[Alert], Awaitable[bool]]
    ) -> Callable[[Alert], Awaitable[bool]]:
        """`submit` (the outbox's) that first records a new alert's localization as
        pending: once the alert may leave, a crash cannot lose its localization."""

        async def submit_guarded(alert: Alert) -> bool:
            if alert.record_number == 1 and self.store is not None:
                try:
                    await self._db(self.store.expect, alert)
                except sqlite3.Error as exc:  # the alert matters more than its localization
                    log.error("localization of %s not recorded as pending: %s", alert.id, exc)
            return await submit(alert)

        return submit_guarded

    async def _resolve(self, alert_id: str, outcome: str) -> None:
        if self.store is None:
            return
        try:
            await self._db(self.store.resolve, alert_id, outcome)
        except sqlite3.Error as exc:  # costs a repeated (and deduplicated) attempt at restart
            log.error("localization of %s not recorded as resolved: %s", alert_id, exc)

    # ------------------------------------------------------------ inputs

    def add(self, chunk: Any) -> None:
        """Take an ISGRI or pointing chunk (others are ignored)."""
        if chunk.kind == "pointing":
            cols = chunk.columns
            for i, pid in enumerate(cols["POINTING"]):
                key = pid.decode() if isinstance(pid, bytes) else str(pid)
                self._attitudes.pop(key.strip(), None)  # re-insert: newest last
                self._attitudes[key.strip()] = (
                    float(cols["RA"][i]),
                    float(cols["DEC"][i]),
                    float(cols["ROLL"][i]),
                )
            while len(self._attitudes) > 64:  # only recent pointings get bursts localized
                del self._attitudes[next(iter(self._attitudes))]
        elif chunk.kind == "isgri":
            self._first_isgri = min(self._first_isgri, chunk.tstart)
            self._chunks.append(chunk)
            self._covered_until = max(self._covered_until, chunk.tstop)
            # keep what a request being completed from the ingest log will need
            oldest = min((r.background[0] for r in self._completing), default=np.inf)
            while self._chunks and self._chunks[0].tstop < min(
                self._covered_until - self.keep, oldest
            ):
                self._chunks.popleft()
        self._start_ready()

    def request(self, record: Any) -> None:
        """A new alert: localize it when the imager data cover the burst."""
        if self._localize is None:
            return
        req = _request(record)
        self._requested.add(record.alert.id)
        if self._ingest is not None and (
            req.background[0] < self._first_isgri or req.pointing not in self._attitudes
        ):
            # Its background or attitude came before this process started (a restart in
            # the middle of a pointing): read them back from the ingest log first, and
            # wait for the attitude, as for a request resumed after a restart; then the
            # outcome does not depend on when the daemon was restarted.
            task = asyncio.get_running_loop().create_task(self._complete(req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._pending.append(req)
        self._start_ready()

    async def _complete(self, req: _Request) -> None:
        req.resumed = True
        self._completing.append(req)
        try:
            req.chunks = await self._read_back(self._ingest, req, req.record.alert)
        except Exception:  # localize with what is in memory
            log.exception("reading back the imager data of %s failed", req.record.alert.id)
        finally:
            self._completing.remove(req)
        self._pending.append(req)
        self._start_ready()

    async def resume(
        self,
        ingest: Any,
        records: dict[str, Any],
        latest: Callable[[str], Awaitable[Alert | None]],
    ) -> int:
        """At start: take up the localizations a crash left pending (see the module doc).

        `records`: the stream stage's alert records by id (the warm-up may have found the
        alert again: its record is then shared, so revisions stay in sequence); `latest`:
        the newest committed revision of an alert (the outbox's); `ingest`: the ingest
        log (or its ``AsyncIngestLog``), to read back the imager chunks and the attitude.
        Returns how many resumed.
        """
        self._ingest = ingest
        if self.store is None:
            return 0
        await self._db(self.store.prune)
        resumed = 0
        for alert_id, request in await self._db(self.store.pending):
            if alert_id in self._requested:
                continue
            try:
                resumed += await self._resume_one(alert_id, request, ingest, records, latest)
            except Exception as exc:  # one bad record must not keep the daemon from starting
                log.exception("localization of alert %s could not be resumed", alert_id)
                await self._resolve(alert_id, f"not resumed: {exc}")
        self._start_ready()
        return resumed

    async def _resume_one(
        self,
        alert_id: str,
        request: dict[str, Any],
        ingest: Any,
        records: dict[str, Any],
        latest: Callable[[str], Awaitable[Alert | None]],
    ) -> int:
        alert = await latest(alert_id)
        if alert is None:  # killed between this record and the outbox commit
            await self._db(self.store.forget, alert_id)
            return 0
        if alert.alert_type == "retraction" or alert.localization is not None:
            outcome = "retracted" if alert.localization is None else "already localized"
            await self._resolve(alert_id, f"{outcome} before the restart")
            return 0
        record = records.get(alert_id)
        if record is None:
            from nrt.daemon.stream import AlertRecord

            time_met = alert.trigger_time_met
            if time_met is None:
                time_met = request.get("trigger_time_met")
            if time_met is None:
                await self._resolve(alert_id, "no trigger time (MET) to localize at")
                return 0
            trigger = SimpleNamespace(
                time_met=float(time_met),
                timescale=float(alert.rate_duration or request.get("timescale") or 0.05),
                pointing=alert.pointing or request.get("pointing"),
                instrument=alert.instrument,
                flags=(),
            )
            now = time.monotonic()
            record = AlertRecord(alert, trigger, now, now)
        req = _request(record)
        req.resumed = True
        req.chunks = await self._read_back(ingest, req, alert)
        self._pending.append(req)
        self._requested.add(alert_id)
        log.warning(
            "localization of alert %s resumed after a restart (%d imager chunks read back)",
            alert_id,
            len(req.chunks),
        )
        return 1

    async def _read_back(self, ingest: Any, req: _Request, alert: Alert) -> list[Any]:
        """The imager chunks of the request's time range, and its pointing's attitude,
        from the files the ingest log kept (times there are since MJD 51544 TT)."""
        shift = 0.0  # MET (the trigger's MJDREF) -> seconds since MJD 51544 TT
        if alert.trigger_time_met is not None:
            from astropy.time import Time

            when = Time(alert.trigger_time.rstrip("Z"), format="isot", scale="utc")
            shift = (when.tt.mjd - MJDREF_IJD) * 86400.0 - alert.trigger_time_met
        lo, hi = req.background[0] + shift - 1.0, req.interval[1] + shift + 1.0
        known = await AsyncIngestLog.of(ingest).records(req.pointing) if req.pointing else []
        wanted = [
            r
            for r in known
            if (r.kind == "isgri" and r.tstop > lo and r.tstart < hi) or r.kind == "pointing"
        ]
        chunks = []
        for record in wanted:
            try:
                chunk = await asyncio.to_thread(read_chunk, record.path)
            except (OSError, TelemetryError) as exc:
                log.info("localization resume: %s no longer readable (%s)", record.path, exc)
                continue
            if chunk.kind == "pointing":
                self.add(chunk)  # the attitude
            else:
                chunks.append(chunk)
        return chunks

    def _start_ready(self) -> None:
        now = time.monotonic()
        keep = []
        for req in self._pending:
            covered = max(self._covered_until, req.covered_until)
            ready = covered >= req.interval[1] and not self._needs_attitude(req)
            if self._draining or ready or now - req.asked > self.wait:
                task = asyncio.get_running_loop().create_task(self._run(req))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                keep.append(req)
        self._pending = keep

    def _needs_attitude(self, req: _Request) -> bool:
        """A request completed from the ingest log (resumed after a restart, or asked
        for soon after one) whose pointing's attitude has not come in (again) yet."""
        return req.resumed and req.pointing is not None and req.pointing not in self._attitudes

    async def drain(self) -> None:
        """End of input: localize what is still waiting with the data there are."""
        self._draining = True  # every request starts now, also one completed meanwhile
        while True:
            self._start_ready()
            if not self._tasks:
                return
            await asyncio.wait(set(self._tasks))

    def close(self) -> None:
        """Close the record on its thread and wait for it (the end of a run)."""
        if self.store is not None:
            self._pool.submit(self.store.close)
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------ work

    def _events(self, lo: float, hi: float, extra: list[Any] = ()) -> dict[str, np.ndarray] | None:
        found = {c.name: c for c in extra}
        found.update({c.name: c for c in self._chunks})
        chosen = sorted(
            (c for c in found.values() if c.tstop > lo and c.tstart < hi), key=lambda c: c.tstart
        )
        parts = [c.columns for c in chosen]
        if not parts:
            return None
        return {
            k: np.concatenate([p[k] for p in parts]) for k in ("TIME", "DETY", "DETZ", "ENERGY")
        }

    async def _run(self, req: _Request) -> None:
        """Localize, then mark the request resolved (an exception leaves it pending: the
        next start tries again)."""
        if self.delay:
            await asyncio.sleep(self.delay)
        outcome = await self._localize_one(req)
        await self._resolve(req.record.alert.id, outcome)

    async def _localize_one(self, req: _Request) -> str:
        """What came of it: the update's record number, or why there is no position."""
        attitude = self._attitudes.get(req.pointing or "")
        events = self._events(req.background[0], req.interval[1], req.chunks)
        if attitude is None or events is None:
            log.info("no imager data or attitude for alert %s: not localized", req.record.alert.id)
            return "no imager data or attitude"
        try:
            found = await asyncio.to_thread(
                self._localize,
                events["TIME"],
                events["DETY"],
                events["DETZ"],
                req.interval,
                req.background,
                attitude,
            )
        except (ValueError, ArithmeticError) as exc:
            log.info("alert %s not localized: %s", req.record.alert.id, exc)
            return f"not localized: {exc}"
        if found is not None and getattr(found, "ambiguous", False):
            log.warning(
                "alert %s: the imager position is ambiguous (two positions a mask period "
                "apart fit equally); no position sent",
                req.record.alert.id,
            )
            return "ambiguous"
        if found is None or found.significance < self.min_significance:
            log.info(
                "alert %s: imager significance %.1f below %.1f, no position",
                req.record.alert.id,
                getattr(found, "significance", 0.0),
                self.min_significance,
            )
            return "below the significance threshold"
        position = Localization(found.ra % 360.0, found.dec, found.error_radius)
        note = f"ISGRI coded-mask position, image significance {found.significance:.1f}"
        update = await self.revise(
            req.record, lambda a: a.updated(localization=position, note=note)
        )
        if update is not None:
            req.record.localized = True
            self.updates.append(update)
            log.warning(
                "ALERT UPDATE %s: RA %.3f Dec %.3f +- %.1f arcmin",
                update.id,
                found.ra,
                found.dec,
                found.error_radius * 60,
            )
            return f"update record {update.record_number}"
        # Retracted meanwhile, or the position was committed before a restart.
        return f"no new record (latest {req.record.alert.record_number})"


def _request(record: Any) -> _Request:
    """The imager interval of an alert's burst, and the background before it."""
    t, scale = record.trigger.time_met, max(record.trigger.timescale, 0.05)
    start = t - scale
    stop = t + max(2 * scale, 1.0)
    background = (start - 60.0, start - 5.0)
    return _Request(record, (start, stop), background, record.trigger.pointing, time.monotonic())
