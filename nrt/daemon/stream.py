"""The stream stage: every chunk goes to the stream detectors at once; triggers become alerts.

With ``trigger.prompt`` (the default) the detectors report the first window of an
excess at once, flagged preliminary: it goes out as the initial alert within a
chunk of the data. The complete trigger follows once the excess ended and the
rate after it was seen (about 20 s of data later): it updates the alert with the
refined measurements, or retracts it when the rate stayed up (a background
variation: slews, belt exits), as GCN notices do.

Detection runs off the event loop (one worker thread, so the detectors' state is
touched by one thread at a time, in chunk order). An alert's id is derived from
its instrument and trigger time, so the same burst seen again after a restart
maps to the same (id, record_number) and the outbox drops the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from nrt import metrics
from nrt.alerts.model import Alert
from nrt.plugins import hook
from nrt.telemetry.errors import TelemetryError
from nrt.telemetry.formats import read_chunk

log = logging.getLogger(__name__)

#: A chunk this far (s) behind the newest data of its kind is no reordering but a jump.
#: One is late data (the detectors skip it); two in a row mean the newest time was wrong
#: (a corrupted clock) or the stream restarted, and the detectors start afresh rather
#: than skip every chunk from then on.
JUMP_BACK = 600.0
#: Seconds of recent chunks kept per kind, to look again at a chunk that came out of order.
REWIND = 300.0

PRELIMINARY = "preliminary"  # detectors.trigger.FLAG_PRELIMINARY
VARIATION = "background_variation"  # detectors.trigger.FLAG_BACKGROUND_VARIATION


@dataclass
class AlertRecord:
    """What the daemon remembers of an alert it issued (for updates and the summary)."""

    alert: Alert
    trigger: Any
    chunk_arrival: float  # monotonic time the triggering chunk was queued
    submitted: float  # monotonic time the alert was committed to the outbox
    localized: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class StreamStage:
    """Feeds chunks to the stream detectors and submits initial alerts."""

    def __init__(
        self,
        trigger_config: Any,
        tense: str,
        submit: Callable[[Alert], Awaitable[bool]],
        on_trigger: Callable[[AlertRecord], None] | None = None,
        latest: Callable[[str], Awaitable[Alert | None]] | None = None,
    ) -> None:
        self.config = trigger_config
        self.tense = tense
        self.submit = submit
        self.on_trigger = on_trigger
        self.detectors = hook("stream_triggers")(trigger_config) if trigger_config.enabled else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nrt-stream")
        self.latest = latest
        self.alerts: dict[str, AlertRecord] = {}
        self._newest: dict[str, float] = {}
        self._behind: dict[str, int] = {}
        self._recent: dict[str, list[Any]] = {}
        self._revising = asyncio.Lock()

    def reconfigure(self, trigger_config: Any) -> None:
        """SIGHUP: a new false-alarm rate takes effect on a fresh detector state."""
        if trigger_config != self.config:
            self.config = trigger_config
            self.detectors = (
                hook("stream_triggers")(trigger_config) if trigger_config.enabled else None
            )

    async def feed_many(self, items: list[tuple[Any, float]]) -> list[AlertRecord]:
        """Feed chunks taken off the queue together, in order, each with its arrival time.

        A backlog goes to the detectors in one worker-thread hop (``push_many``), not one
        hop per chunk; a late chunk, or data going back far enough to restart the
        detectors, splits it.
        """
        if self.detectors is None:
            return []
        records: list[AlertRecord] = []
        run: list[tuple[Any, float]] = []
        for chunk, arrival in items:
            late, restart = self._check_jump(chunk)
            if (late or restart) and run:
                records += await self._push(run)
                run = []
            if restart:
                self.detectors = hook("stream_triggers")(self.config)
            if late:
                known = [r.trigger for r in self.alerts.values()]
                loop = asyncio.get_running_loop()
                triggers = await loop.run_in_executor(self._pool, self._look_again, chunk, known)
                records += await self._alerts(triggers, [(chunk, arrival)])
            else:
                run.append((chunk, arrival))
            self._remember(chunk)
        if run:
            records += await self._push(run)
        return records

    async def _push(self, run: list[tuple[Any, float]]) -> list[AlertRecord]:
        chunks = [chunk for chunk, _ in run]
        loop = asyncio.get_running_loop()
        triggers = await loop.run_in_executor(self._pool, _push_all, self.detectors, chunks)
        return await self._alerts(triggers, run)

    async def _alerts(self, triggers: list[Any], run: list[tuple[Any, float]]) -> list[AlertRecord]:
        """Alerts for `triggers`, each timed from the arrival of the chunk holding its time
        (the earliest that could have completed it)."""
        kinds = set(getattr(self.config, "instruments", ()))
        mine = [item for item in run if item[0].kind in kinds] or run
        found = []
        for trigger in triggers:
            chunk, arrival = next(
                (item for item in mine if item[0].tstop >= trigger.time_met), mine[-1]
            )
            found.append(await self._alert(trigger, arrival, chunk.name))
        return [r for r in found if r is not None]

    def _check_jump(self, chunk: Any) -> tuple[bool, bool]:
        """(late, restart): late for a chunk out of order (behind the newest data, by less
        than JUMP_BACK); restart when the data went back further twice in a row (the
        caller starts the detectors afresh)."""
        kind, newest = chunk.kind, self._newest.get(chunk.kind)
        restart = False
        if newest is not None and chunk.tstop < newest - JUMP_BACK:
            self._behind[kind] = self._behind.get(kind, 0) + 1
            if self._behind[kind] < 2:
                log.warning(
                    "%s is %.0f s behind the newest %s data: late, skipped by the stream "
                    "detectors (the pointing's quick-look still uses it)",
                    chunk.name,
                    newest - chunk.tstop,
                    kind,
                )
                return False, False
            log.error(
                "%s data went back %.0f s twice in a row (now %s): the newest time was wrong "
                "(a clock jump?) or the stream restarted; stream detectors restarted",
                kind,
                newest - chunk.tstop,
                chunk.name,
            )
            restart = True
            self._newest.clear()
            self._recent.clear()
            newest = None
        self._behind[kind] = 0
        late = newest is not None and chunk.tstart < newest - 1e-6
        self._newest[kind] = max(self._newest.get(kind, chunk.tstop), chunk.tstop)
        return late, restart

    def _remember(self, chunk: Any) -> None:
        kept = self._recent.setdefault(chunk.kind, [])
        kept.append(chunk)
        horizon = self._newest[chunk.kind] - REWIND - JUMP_BACK
        kept[:] = [c for c in kept if c.tstop >= horizon]

    def _look_again(self, late: Any, known: list[Any]) -> list[Any]:
        """A chunk that arrived after its successors: the running detectors cannot take it
        (their time only goes forward), so fresh ones run over it and the chunks around it,
        in time order. Triggers inside it that no alert covers yet are returned."""
        log.info("%s arrived out of order: looking at it again with its neighbours", late.name)
        fresh = hook("stream_triggers")(self.config)
        around = {
            c.name: c
            for c in self._recent.get(late.kind, [])
            if c.tstop > late.tstart - REWIND and c.name != late.name
        }
        around[late.name] = late
        found = []
        for chunk in sorted(around.values(), key=lambda c: c.tstart):
            found += fresh.push(chunk)
        found += fresh.flush()
        return [
            t
            for t in found
            if late.tstart - 1.0 <= t.time_met <= late.tstop + 1.0
            and not any(
                k.instrument == t.instrument
                and abs(k.time_met - t.time_met) <= max(k.timescale, t.timescale) + 1.0
                for k in known
            )
        ]

    async def warm_up(self, records: list[Any], span: float = 700.0) -> int:
        """After a restart, feed the last `span` seconds of already-handled data again.

        The detectors' state (background, excess variance, an excess in progress)
        died with the process; replaying the recent chunks rebuilds it, and a burst
        that was cut by the crash is found now. Alerts it raises again carry the
        same id and record_number, so the outbox drops those already issued.
        """
        if self.detectors is None:
            return 0
        kinds = set(getattr(self.config, "instruments", ()))
        mine = [r for r in records if r.kind in kinds]
        if not mine:
            return 0
        end = max(r.tstop for r in mine)
        recent = sorted(
            (r for r in mine if r.tstop >= end - span), key=lambda r: (r.kind, r.tstart)
        )
        chunks = await asyncio.to_thread(_readable, recent)  # one thread hop for all
        now = time.monotonic()
        await self.feed_many([(chunk, now) for chunk in chunks])
        log.info("stream detectors warmed up on %d recent chunks", len(chunks))
        return len(chunks)

    async def finish(self) -> list[AlertRecord]:
        """End of a finite stream (replay): report groups still open."""
        if self.detectors is None:
            return []
        loop = asyncio.get_running_loop()
        triggers = await loop.run_in_executor(self._pool, self.detectors.flush)
        now = time.monotonic()
        found = [await self._alert(t, now) for t in triggers]
        return [r for r in found if r is not None]

    async def _alert(self, trigger: Any, arrival: float, chunk: str = "") -> AlertRecord | None:
        """A trigger becomes an initial alert, or finalizes the preliminary one it follows."""
        metrics.TRIGGERS.labels(trigger.instrument).inc()
        if PRELIMINARY not in trigger.flags:
            earlier = self._preliminary_of(trigger)
            if earlier is not None:
                await self._finalize(earlier, trigger)
                return None
        other = self._other_band_of(trigger)
        if other is not None:
            await self._merge_band(other, trigger)
            return None
        alert = Alert.initial_from_trigger(trigger, tense=self.tense)
        new = await self.submit(alert)
        record = AlertRecord(alert, trigger, arrival, time.monotonic(), extra={"chunk": chunk})
        self.alerts[alert.id] = record
        if new:
            metrics.ALERTS.labels(alert.instrument, "initial").inc()
            log.warning(
                "ALERT %s %s at %s: %.1f sigma on %.2f s (chunk %s)%s",
                alert.id,
                alert.instrument,
                alert.trigger_time,
                trigger.significance,
                trigger.timescale,
                chunk or "-",
                " [preliminary]" if PRELIMINARY in trigger.flags else "",
            )
            if self.on_trigger:
                self.on_trigger(record)
        else:
            log.info("alert %s already issued (seen again after a restart or replay)", alert.id)
            record.alert = await self._latest(alert.id) or alert
        return record

    def _preliminary_of(self, final: Any) -> AlertRecord | None:
        """The open preliminary alert this complete trigger describes (same excess)."""
        return self._latest_of(
            lambda t: PRELIMINARY in t.flags and _same_excess(t, final, slack=1.0)
        )

    def _other_band_of(self, trigger: Any) -> AlertRecord | None:
        """An alert of this excess from another energy band (bands report separately,
        and their triggers of one excess may complete in different chunks)."""
        return self._latest_of(
            lambda t: (
                None not in (t.band, trigger.band)
                and tuple(t.band) != tuple(trigger.band)
                and _same_excess(t, trigger)
            ),
        )

    def _latest_of(self, match: Callable[[Any], bool]) -> AlertRecord | None:
        """The latest alert whose trigger ``match`` accepts."""
        return next((r for r in reversed(self.alerts.values()) if match(r.trigger)), None)

    async def _merge_band(self, record: AlertRecord, trigger: Any) -> None:
        """One alert per excess, as when the bands' triggers come in one batch (the most
        significant band's complete trigger describes it)."""
        better = trigger.significance > record.trigger.significance
        if PRELIMINARY in trigger.flags or not better or VARIATION in trigger.flags:
            log.info("alert %s: band %s saw it too", record.alert.id, trigger.band)
            return
        record.trigger = trigger
        await self.revise(record, lambda a: a.updated(trigger=trigger))

    async def _finalize(self, record: AlertRecord, final: Any) -> None:
        """The group ended: refine the alert, or retract it if the rate stayed up."""
        record.trigger = final
        if PRELIMINARY not in record.alert.flags:
            # Finalized before a restart: the warm-up measured it again, from a different
            # detector history, so slightly differently; a new record would only repeat it.
            log.info("alert %s was finalized before the restart", record.alert.id)
            return
        if VARIATION in final.flags:
            reason = "probable background variation: the rate stayed up after the excess"
            await self.revise(record, lambda a: a.retracted(reason))
        else:
            await self.revise(record, lambda a: a.updated(trigger=final))

    async def revise(self, record: AlertRecord, make: Callable[[Alert], Alert]) -> Alert | None:
        """Commit the next revision of an alert (update or retraction), derived from its
        latest one; serialized so two revisions never take the same record number."""
        async with self._revising:
            latest = record.alert
            if latest.alert_type == "retraction":
                return None
            revision = make(latest)
            if _same_content(revision, latest):
                # A restart found the same thing again (warm-up, localization): the
                # revision that says it is already committed; a new record would repeat it.
                log.info("alert %s record %d already says this", latest.id, latest.record_number)
                return None
            if await self.submit(revision):
                record.alert = revision
                metrics.ALERTS.labels(revision.instrument, revision.alert_type).inc()
                log.warning(
                    "ALERT %s %s (record %d)",
                    revision.alert_type.upper(),
                    revision.id,
                    revision.record_number,
                )
                return revision
            # Issued before a restart: continue from what the outbox holds.
            record.alert = await self._latest(revision.id) or revision
            return None

    async def _latest(self, alert_id: str) -> Alert | None:
        return await self.latest(alert_id) if self.latest is not None else None

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _same_excess(a: Any, b: Any, slack: float = 0.0) -> bool:
    """Two triggers of one instrument within one another's windows (and ``slack`` s)."""
    return (
        a.instrument == b.instrument
        and abs(a.time_met - b.time_met) <= max(a.timescale, b.timescale) + slack
    )


def _push_all(detectors: Any, chunks: list[Any]) -> list[Any]:
    """``push_many`` where the stream_triggers plugin has it, else ``push`` one by one."""
    push_many = getattr(detectors, "push_many", None)
    if push_many is not None:
        return push_many(chunks)
    return [t for chunk in chunks for t in detectors.push(chunk)]


def _readable(records: list[Any]) -> list[Any]:
    """The chunks of `records` that can still be read (warm-up)."""
    chunks = []
    for record in records:
        try:
            chunks.append(read_chunk(record.path))
        except (OSError, TelemetryError) as exc:
            log.info("warm-up: %s no longer readable (%s)", record.path, exc)
    return chunks


def _same_content(revision: Alert, latest: Alert) -> bool:
    """Whether `revision` only repeats `latest` (all but its number and time equal)."""
    return (
        replace(
            revision,
            record_number=latest.record_number,
            alert_datetime=latest.alert_datetime,
            alert_type=latest.alert_type,
        )
        == latest
    )
