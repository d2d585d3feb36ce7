"""The publisher: commit to the outbox, then deliver to every sink, never losing one.

The daemon calls::

    publisher = Publisher(AlertsConfig(mqtt=MqttConfig(url=...)))
    await publisher.start()          # background delivery, resumes the outbox
    await publisher.submit(alert)    # committed on return; published right after
    await publisher.flush(timeout)   # on shutdown: wait until everything is out
    await publisher.close()

Each sink has its own task working through its own pending rows in commit
order, with exponential backoff after a failure. MQTT retries forever (an
outage delays alerts, never loses them); other sinks give up on a row after
`max_attempts` and mark it failed. Errors are logged once per change and kept
in `errors` so callers can report them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrt.alerts.model import Alert
from nrt.alerts.mqtt import MqttConfig, explain
from nrt.alerts.outbox import Outbox, OutboxRow, default_path
from nrt.alerts.sinks import DirectorySink, HookSink, MqttSink, Sink, _Partial

log = logging.getLogger("nrt.alerts")


class DeliveryTimeout(TimeoutError):
    """`flush` ran out of time with alerts still pending; says why."""


@dataclass(frozen=True)
class AlertsConfig:
    """Alert publication settings (the ``[alerts]`` table of the daemon's TOML)."""

    mqtt: MqttConfig | None = None
    directory: Path | None = None
    hook: Sequence[str] | None = None
    hook_timeout: float = 30.0
    outbox: Path | None = None  # default: <state dir>/alerts-outbox.sqlite
    author_ivorn: str | None = None
    #: Attempts per revision for the directory and hook sinks before it is marked failed.
    sink_attempts: int = 5
    retry_initial: float = 0.2
    #: Backoff cap between attempts to reopen a sink. Short, because it is also how late
    #: alerts can be after a broker comes back (a refused connect to a down broker costs
    #: next to nothing; a 30 s cap delayed delivery by up to 30 s after a 60 s outage).
    retry_max: float = 5.0
    batch: int = 100
    synchronous: str = "FULL"

    def make_sinks(self) -> list[Sink]:
        sinks: list[Sink] = []
        if self.mqtt is not None:
            sinks.append(MqttSink(self.mqtt))
        if self.directory is not None:
            sinks.append(DirectorySink(self.directory, max_attempts=self.sink_attempts))
        if self.hook:
            sinks.append(
                HookSink(self.hook, timeout=self.hook_timeout, max_attempts=self.sink_attempts)
            )
        return sinks


class Publisher:
    """The outbox plus one delivery task per sink."""

    def __init__(
        self,
        config: AlertsConfig,
        sinks: Sequence[Sink] | None = None,
        *,
        on_delivered: Callable[[str, OutboxRow, float], None] | None = None,
    ) -> None:
        """`on_delivered(sink_name, row, seconds_since_commit)` is called after each
        delivery is recorded (the daemon feeds its alert-latency histogram with it)."""
        self.config = config
        self.on_delivered = on_delivered
        self.sinks = list(sinks) if sinks is not None else config.make_sinks()
        if not self.sinks:
            raise ValueError("no alert sink configured: set [alerts.mqtt], directory or hook")
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nrt-outbox")
        # Opened on the outbox's thread like every other call on it (the caller waits:
        # the damage check and any salvage happen before the publisher exists).
        try:
            self.outbox = self._pool.submit(
                Outbox,
                config.outbox or default_path(),
                [s.name for s in self.sinks],
                synchronous=config.synchronous,
                author_ivorn=config.author_ivorn,
            ).result()
        except BaseException:
            self._pool.shutdown()
            raise
        #: sink name -> the last error, None once it delivers again.
        self.errors: dict[str, str | None] = {s.name: None for s in self.sinks}
        self._wake = {s.name: asyncio.Event() for s in self.sinks}
        self._idle = {s.name: asyncio.Event() for s in self.sinks}
        self._closing = False
        self._task: asyncio.Task | None = None

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run an outbox call on the outbox's own thread: the event loop never waits on
        SQLite or its fsync, and one thread keeps the calls in order."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def mqtt(self) -> MqttSink | None:
        return next((s for s in self.sinks if isinstance(s, MqttSink)), None)

    # -- the API the daemon uses ---------------------------------------------------------

    async def submit(self, alert: Alert) -> bool:
        """Commit `alert` to the outbox and wake the sinks. Returns False when this
        (id, record_number) was already committed (nothing new is sent)."""
        seq = await self._db(self.outbox.add, alert)
        if seq is None:
            return False
        for name, event in self._wake.items():
            self._idle[name].clear()
            event.set()
        return True

    async def latest(self, alert_id: str) -> Alert | None:
        """The newest committed revision of an alert (to continue it after a restart)."""
        return await self._db(self.outbox.latest, alert_id)

    async def prune(self, max_age: float) -> int:
        """Delete alerts every sink delivered more than `max_age` s ago (``Outbox.prune``)."""
        return await self._db(self.outbox.prune, max_age)

    async def start(self) -> Publisher:
        """Run `run()` in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="nrt-alerts-publisher")
        return self

    async def run(self) -> None:
        """Deliver until `close()`; starts with whatever a previous run left pending."""
        await asyncio.gather(*(self._loop(sink) for sink in self.sinks))

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until no alert is pending for any sink; on timeout raise
        `DeliveryTimeout` naming how many are pending and the sinks' last errors."""
        await self.start()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._drained(s.name) for s in self.sinks)), timeout
            )
        except TimeoutError:
            pending = {
                s.name: await self._db(self.outbox.count_pending, s.name) for s in self.sinks
            }
            reasons = "; ".join(f"{k}: {v}" for k, v in self.errors.items() if v)
            raise DeliveryTimeout(
                f"{sum(pending.values())} alert deliveries still pending after {timeout} s "
                f"({pending}); {reasons or 'no error reported yet'}"
            ) from None

    async def publish_health(self, instrument: str, summary: dict) -> None:
        """Retained `<prefix>/health/<instrument>` summary (latest wins, not queued)."""
        if self.mqtt is not None:
            await self.mqtt.publish_health(instrument, summary)

    async def close(self) -> None:
        """Stop delivering (pending alerts stay for the next start), say offline, disconnect."""
        self._closing = True
        for event in self._wake.values():
            event.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sink in self.sinks:
            await sink.close()
        await self._db(self.outbox.close)
        self._pool.shutdown(wait=True)

    async def __aenter__(self) -> Publisher:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- delivery loop ----------------------------------------------------------------------

    async def _drained(self, name: str) -> None:
        while await self._db(self.outbox.count_pending, name):
            self._idle[name].clear()
            self._wake[name].set()
            await self._idle[name].wait()

    async def _loop(self, sink: Sink) -> None:
        delay = self.config.retry_initial
        wake, idle = self._wake[sink.name], self._idle[sink.name]
        while not self._closing:
            wake.clear()
            rows = await self._db(self.outbox.pending, sink.name, self.config.batch)
            try:
                await sink.open()  # MQTT: connected and "online" even before any alert
                sent = await sink.deliver(rows) if rows else 0
                error = None
            except _Partial as partial:
                sent, error = partial.delivered, partial.error
            except Exception as exc:  # connecting failed: nothing went out
                sent, error = 0, exc
            if sent:
                await self._db(self.outbox.mark_sent, sink.name, [row.seq for row in rows[:sent]])
                self._notify(sink, rows[:sent])
            if error is None:
                self._report(sink, None)
                delay = self.config.retry_initial
                if not rows:
                    idle.set()
                    await self._until_needed(sink, wake)
                continue
            message = self._describe(sink, error)
            if sent < len(rows):  # else: reopening failed with nothing pending; just retry
                failed = rows[sent]
                give_up = sink.max_attempts is not None and failed.attempts + 1 >= sink.max_attempts
                await self._db(
                    functools.partial(self.outbox.record_failure, give_up=give_up),
                    sink.name,
                    failed.seq,
                    message,
                )
                if give_up:
                    log.error("giving up on %s for %s: %s", failed.id, sink.name, message)
            else:
                log.warning("%s: cannot reopen (%s); retrying in %.1f s", sink.name, message, delay)
            idle.set()  # flush() re-checks; it must not hang on a sink that is backing off
            await asyncio.sleep(delay)  # close() cancels this task
            delay = min(delay * 2, self.config.retry_max)

    @staticmethod
    async def _until_needed(sink: Sink, wake: asyncio.Event) -> None:
        """Idle until an alert is submitted or the sink must reopen (connection lost)."""
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(sink.lost())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _notify(self, sink: Sink, rows: Sequence[OutboxRow]) -> None:
        if self.on_delivered is None:
            return
        now = time.time()
        for row in rows:
            try:
                self.on_delivered(sink.name, row, now - row.committed)
            except Exception:
                log.exception("on_delivered callback failed (delivery itself is recorded)")

    def _describe(self, sink: Sink, error: BaseException) -> str:
        if isinstance(sink, MqttSink):
            message, transient = explain(error, sink.config)
        else:
            message, transient = str(error) or type(error).__name__, True
        self._report(sink, message, transient)
        return message

    def _report(self, sink: Sink, message: str | None, transient: bool = True) -> None:
        previous = self.errors.get(sink.name)
        self.errors[sink.name] = message
        if message is None:
            if previous is not None:
                log.info("%s delivering again", sink.name)
            return
        if message != previous:
            level = logging.WARNING if transient else logging.ERROR
            log.log(level, "alert delivery via %s failed (will retry): %s", sink.name, message)

    async def stats(self) -> dict[str, object]:
        """Pending counts and last errors per sink, for metrics and `nrt` status."""
        return {
            "time": time.time(),
            "pending": {
                s.name: await self._db(self.outbox.count_pending, s.name) for s in self.sinks
            },
            "errors": dict(self.errors),
        }
