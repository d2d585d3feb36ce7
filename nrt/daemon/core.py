"""The daemon: one asyncio process wiring sources, detectors, pointings, alerts and metrics.

::

    inbox / MQTT / replay --> bounded queue --> stream detectors --> alerts (outbox -> MQTT, files, hook)
                                            \\-> pointing tracker --> quick-look + health graph --> metrics, nrt/health/...

Lifecycle: READY is sent to systemd once the sources, the outbox, the metrics
server and the broker link are up; WATCHDOG pings come from the loop itself (a
blocked loop misses them and systemd restarts us); SIGTERM stops input, drains
the queue and running pointings, flushes the outbox within ``flush_timeout`` and
exits 0; SIGHUP reloads what can change (see ``nrt.config``).

Threads: the loop never touches SQLite. The ingest log, the pointing tracker and
the quarantine run on the ingest log's thread (``nrt-ingest``, through
``AsyncIngestLog``), the alert outbox on the publisher's (``nrt-outbox``), the
pending localizations on the localization stage's (``nrt-localization``), the cache
index on the quick-look workers and ``asyncio.to_thread``. At start-up the loop
waits while the outbox and the localization record are opened on their threads
(before READY; nothing else runs yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrt import config as configuration
from nrt import metrics, paths
from nrt.alerts.mqtt import MqttConfig as BrokerConfig
from nrt.alerts.publisher import AlertsConfig, Publisher
from nrt.cache import Cache
from nrt.daemon import memory
from nrt.daemon.localization import LocalizationStage
from nrt.daemon.quicklook import PointingStage
from nrt.daemon.replay import END, ReplaySource
from nrt.daemon.stall import CHECK_INTERVAL, StallGuard, dump_on, stacks
from nrt.daemon.stream import AlertRecord, StreamStage
from nrt.systemd import Notifier, watchdog_interval
from nrt.telemetry.inbox import InboxSource
from nrt.telemetry.ingest import Quarantine, absolute_seconds
from nrt.telemetry.ingestthread import AsyncIngestLog
from nrt.telemetry.mqttsource import MqttSource
from nrt.telemetry.pointings import PointingTracker

log = logging.getLogger(__name__)

#: A live daemon keeps this many recent alerts and pointing results in memory (for its
#: status line and the alert-latency metric); a replay keeps all of them for its summary.
RECENT = 1000
#: At most this many chunks waiting on the queue are handled together (see _consume).
BATCH = 64
#: An announced pointing quiet for this many grace periods leaves the
#: tracker's memory; a late chunk brings it back from the ingest log (one indexed query).
TRACKER_RETAIN = 4
#: Seconds between handing free heap pages back to the kernel (``nrt.daemon.memory``).
TRIM_INTERVAL = 60.0
#: Seconds of data the ingest log keeps for announced pointings (as the tracker's retain).
INGEST_RETAIN = 2 * 86400.0

#: Seconds from the INTEGRAL epoch (MJD 51544.0 TT) to the Unix epoch, less TT-UTC.
_IJD_TO_UNIX = (51544.0 - 40587.0) * 86400.0 - 69.184


@dataclass
class Layout:
    """The directories a daemon uses, resolved once from configuration and environment."""

    state: Path
    cache: Path
    inbox: Path
    quarantine: Path
    products: Path | None

    @classmethod
    def of(cls, config: configuration.Config) -> Layout:
        state = paths.state_dir(config.paths.state or None)
        cache = paths.cache_dir(config.paths.cache or None)
        inbox = Path(config.paths.inbox) if config.paths.inbox else state / "inbox"
        quarantine = (
            Path(config.paths.quarantine) if config.paths.quarantine else state / "quarantine"
        )
        products = None
        if config.quicklook.products != "off":
            products = Path(config.quicklook.products or state / "products")
        return cls(state, cache, inbox, quarantine, products)


@dataclass
class Summary:
    """What a run did: printed by ``nrt replay`` and ``nrt demo``."""

    chunks: int = 0
    alerts: list[AlertRecord] = field(default_factory=list)
    pointings: list[Any] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    data_seconds: float = 0.0
    #: element runs ("computed") and cache hits by tier during the run
    cache: dict[str, int] = field(default_factory=dict)


class Daemon:
    """``nrt run`` (live: inbox and MQTT) and ``nrt replay`` (a directory, then stop)."""

    def __init__(
        self,
        config: configuration.Config,
        *,
        replay: Path | None = None,
        speed: float | None = None,
        notifier: Notifier | None = None,
        on_alert: Any = None,
        on_progress: Any = None,
    ) -> None:
        self.config = config
        self.layout = Layout.of(config)
        self.replay = replay
        self.speed = speed
        self.notifier = notifier or Notifier()
        self.on_alert = on_alert
        self.on_progress = on_progress
        self.summary = Summary()
        self.stop_event: asyncio.Event | None = None
        self.failed = False
        self._data_span: list[float] = []
        self._arrivals: dict[str, float] = {}
        #: set once the chunk consumer is found stuck (see nrt.daemon.stall)
        self.stalled = False

    # ------------------------------------------------------------ wiring

    def _publisher(self) -> Publisher:
        c, broker = self.config, None
        if c.mqtt.enabled:
            broker = BrokerConfig(
                url=c.mqtt.url,
                prefix=c.mqtt.prefix,
                username=c.mqtt.username or None,
                password=c.mqtt_password(),
                ca_file=Path(c.mqtt.ca_file) if c.mqtt.ca_file else None,
                cert_file=Path(c.mqtt.cert_file) if c.mqtt.cert_file else None,
                key_file=Path(c.mqtt.key_file) if c.mqtt.key_file else None,
                client_id=f"{c.mqtt.client_id}-alerts",
                message_expiry=int(c.mqtt.message_expiry),
            )
        directory = Path(c.alerts.directory) if c.alerts.directory else None
        if broker is None and directory is None and not c.alerts.hook:
            directory = self.layout.state / "alerts"  # never drop alerts for want of a sink
        settings = AlertsConfig(
            mqtt=broker,
            directory=directory,
            hook=tuple(c.alerts.hook) or None,
            outbox=self.layout.state / "alerts-outbox.sqlite",
            author_ivorn=c.alerts.author_ivorn,
        )
        return Publisher(settings, on_delivered=self._delivered)

    def _delivered(self, sink: str, row: Any, seconds_since_commit: float) -> None:
        arrival = self._arrivals.pop(row.id, None) if row.record_number == 1 else None
        if arrival is not None:  # the first sink to deliver it
            metrics.ALERT_LATENCY.labels(row.instrument).observe(time.monotonic() - arrival)

    def _sources(
        self, queue: asyncio.Queue, ingest: AsyncIngestLog, quarantine: Quarantine
    ) -> list[Any]:
        c = self.config
        if self.replay is not None:
            return [
                ReplaySource(
                    self.replay, queue, ingest, speed=self.speed, on_progress=self.on_progress
                )
            ]
        found: list[Any] = []
        if c.inbox.enabled:
            self.layout.inbox.mkdir(parents=True, exist_ok=True)
            found.append(
                InboxSource(
                    self.layout.inbox, queue, ingest, quarantine, rescan_interval=c.inbox.rescan
                )
            )
        if c.mqtt.enabled and c.mqtt.telemetry:
            broker = BrokerConfig(  # the same TLS trust and client certificate as alerts
                url=c.mqtt.url,
                prefix=c.mqtt.prefix,
                ca_file=Path(c.mqtt.ca_file) if c.mqtt.ca_file else None,
                cert_file=Path(c.mqtt.cert_file) if c.mqtt.cert_file else None,
                key_file=Path(c.mqtt.key_file) if c.mqtt.key_file else None,
            )
            found.append(
                MqttSource(
                    queue,
                    ingest,
                    quarantine,
                    host=broker.host,
                    port=broker.port,
                    prefix=c.mqtt.prefix,
                    client_id=f"{c.mqtt.client_id}-telemetry",
                    store_dir=self.layout.state / "received",
                    username=c.mqtt.username or None,
                    password=c.mqtt_password(),
                    tls_context=broker.ssl_context(),
                )
            )
        return found

    # ------------------------------------------------------------ running

    async def run(self) -> int:
        """Run until SIGTERM (live) or the end of the replay; returns the exit status."""
        started = time.perf_counter()
        reuse_before = metrics.cache_reuse()
        loop = asyncio.get_running_loop()
        self.stop_event = stop = asyncio.Event()
        stop_input = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        dump_on(signal.SIGUSR1, loop)  # ``kill -USR1``: what every task is waiting on

        memory.limit_arenas()  # before the worker threads start (see nrt.daemon.memory)
        memory.fix_mmap_threshold()
        self.layout.state.mkdir(parents=True, exist_ok=True)
        cache = await asyncio.to_thread(
            Cache.open,
            self.layout.cache,
            self.layout.state,
            memory_bytes=self.config.cache.memory_bytes,
        )
        cache.degrade_on_write_error = True  # a full cache disk must not stop the quick-look
        server = metrics.serve(self.config.metrics.listen) if self.config.metrics.listen else None
        ingest = await AsyncIngestLog.open(self.layout.state / "ingest.sqlite")
        ingest.log.on_count = lambda source, outcome: (
            metrics.TELEMETRY_FILES.labels("any", outcome).inc() if outcome != "handled" else None
        )
        quarantine = await ingest.call(Quarantine, self.layout.quarantine, ingest.log)
        publisher = self._publisher()
        await publisher.start()
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.config.inbox.queue)
        grace = self.config.quicklook.grace
        # A replay forgets a pointing once it is announced (its chunks come in time order;
        # a live daemon waits TRACKER_RETAIN graces of wall time for late chunks).
        retain = 0.0 if self.replay is not None else TRACKER_RETAIN * grace
        # Used only on the ingest log's thread (ingest.call), like the log it reads.
        tracker = PointingTracker(ingest.log, grace=grace, retain=retain)
        # Before the stream stage: a new alert's localization is recorded as pending
        # before the alert is committed (restart-safe; see nrt/daemon/localization.py).
        self.localization = LocalizationStage(
            lambda record, make: self.stream.revise(record, make), state=self.layout.state
        )
        self.stream = StreamStage(
            self.config.trigger,
            self.config.alerts.tense,
            self.localization.guard(publisher.submit),
            self._on_trigger,
            latest=publisher.latest,
        )
        self.pointings = PointingStage(
            self.config,
            cache,
            publisher.publish_health,
            products=self.layout.products,
            done=self.layout.state / "quicklook-done",
        )
        sources = self._sources(queue, ingest, quarantine)

        helpers = [
            asyncio.create_task(self._poll_pointings(ingest, tracker), name="pointings"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._maintain(cache, ingest, publisher), name="gc"),
            asyncio.create_task(self._gauges(publisher, ingest, tracker), name="gauges"),
            asyncio.create_task(self._upkeep(), name="upkeep"),
        ]
        for ready in await ingest.call(self._restore, tracker):
            self.pointings.submit(ready)
        if self.replay is None:  # before any new chunk reaches them
            await self.stream.warm_up(await ingest.records())
        await self.localization.resume(ingest, self.stream.alerts, publisher.latest)
        tasks = [asyncio.create_task(s.run(stop_input), name=type(s).__name__) for s in sources]
        self._guard = StallGuard(queue)
        consumer = asyncio.create_task(self._consume(queue, ingest, tracker, stop), name="consumer")
        consumer.add_done_callback(lambda task: self._consumer_ended(task, stop))
        helpers.append(asyncio.create_task(self._stall_guard(consumer, stop), name="stall-guard"))
        await self._wait_ready(publisher, sources)
        self.notifier.ready(f"watching {self.replay or self.layout.inbox}")
        log.info(
            "nrt ready: state %s, cache %s, metrics %s",
            self.layout.state,
            self.layout.cache,
            self.config.metrics.listen or "off",
        )

        await stop.wait()
        self.notifier.stopping("stopping: draining input, pointings and the outbox")
        stop_input.set()
        for task in tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        if self.replay is None and not self.stalled:
            await queue.put(END)
        # a failed consumer was logged when it ended; a stuck one was cancelled
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await consumer
        await asyncio.wait_for(self.localization.drain(), None if self.replay is not None else 30)
        if self.replay is not None:
            for ready in await ingest.call(lambda: tracker.poll() + tracker.flush()):
                self.pointings.submit(ready)
        await self.pointings.drain(None if self.replay is not None else 30)
        for task in helpers:
            task.cancel()
        try:
            await publisher.flush(timeout=self.config.alerts.flush_timeout)
        except TimeoutError as exc:
            log.error(
                "stopping with alerts still pending (they are kept and sent at the next start): %s",
                exc,
            )
        await publisher.close()
        self.stream.close()
        self.localization.close()
        await ingest.close()
        if server:
            server.stop()
        self.summary.seconds = time.perf_counter() - started
        self.summary.pointings = self.pointings.results
        self.summary.cache = {
            k: v - reuse_before.get(k, 0) for k, v in metrics.cache_reuse().items()
        }
        if self._data_span:
            self.summary.data_seconds = max(self._data_span) - min(self._data_span)
        for source in sources:
            self.summary.problems += getattr(source, "problems", [])
        return 1 if self.failed else 0

    def _restore(self, tracker: PointingTracker) -> list[Any]:
        """At start, on the ingest log's thread: the pointings to hand on again."""
        resumed = tracker.restore()
        announced = tracker.log.announced()
        for pointing in set(tracker.pointings()) - {r.pointing for r in resumed}:
            # Announced, but its quick-look did not finish (killed during it): again.
            if pointing in announced and self.pointings.done(pointing) != announced[pointing]:
                resumed.append(tracker.ready(pointing, "resumed"))
        return resumed

    async def _wait_ready(
        self, publisher: Publisher, sources: list[Any], timeout: float = 10.0
    ) -> None:
        """Until the sources watch (the inbox scanned, the MQTT telemetry subscribed: a
        chunk published once we say READY is received) and the alert broker link is up;
        after the timeout we go on degraded."""
        waits = [s.started.wait() for s in sources if hasattr(s, "started")]
        waits += [s.connected.wait() for s in sources if isinstance(s, MqttSource)]
        mqtt = publisher.mqtt
        if mqtt is not None and hasattr(mqtt, "connected"):
            waits.append(mqtt.connected.wait())
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except TimeoutError:
                log.warning(
                    "not everything came up within %.0f s (broker away?); running degraded", timeout
                )

    async def _consume(
        self,
        queue: asyncio.Queue,
        ingest: AsyncIngestLog,
        tracker: PointingTracker,
        stop: asyncio.Event,
    ) -> None:
        while True:
            batch = [await queue.get()]
            # A backlog (a replay, a daemon catching up) is taken together: one hop to each
            # stage's worker thread for all of it, not one per chunk. Live, one at a time.
            while len(batch) < BATCH and batch[-1] is not END and not queue.empty():
                batch.append(queue.get_nowait())
            self._guard.took()
            ended = batch[-1] is END
            chunks = batch[:-1] if ended else batch
            if chunks:
                await self._handle(chunks, ingest, tracker)
            if ended:
                if self.replay is not None:
                    for record in await self.stream.finish():
                        self.summary.alerts.append(record)
                    stop.set()
                return

    async def _handle(self, chunks: list[Any], ingest: AsyncIngestLog, tracker: PointingTracker):
        """The chunks taken off the queue, in order: each record committed before anything
        acts on its chunk; then the tracker, the stream detectors and the localization."""
        arrival = time.monotonic()
        ingested = []
        for chunk in chunks:
            try:
                ingested.append(await ingest.committed(chunk))
            except Exception:  # e.g. the state disk is full: alerts still go out
                log.exception("the ingest record of %s was not committed", chunk.name)
                ingested.append(None)
        # The tracker works on the ingest log's thread while the detectors run on theirs.
        known = [(chunk.name, record) for chunk, record in zip(chunks, ingested, strict=True)]
        tracked = asyncio.ensure_future(ingest.call(_track, tracker, known))
        before = self.summary.chunks
        self.summary.chunks += len(chunks)
        for chunk in chunks:
            metrics.TELEMETRY_FILES.labels(chunk.kind, "accepted").inc()
            data_unix = _IJD_TO_UNIX + absolute_seconds(chunk.tstop, chunk.mjdref)
            metrics.TELEMETRY_LAG.labels(chunk.kind).set(time.time() - data_unix)
            self._data_span += [chunk.tstart, chunk.tstop]
        self._data_span = [min(self._data_span), max(self._data_span)]
        try:
            self.summary.alerts += await self.stream.feed_many([(c, arrival) for c in chunks])
        except Exception:  # a detector bug must not stop ingestion or the pointings
            log.exception("stream detectors failed on %s", ", ".join(c.name for c in chunks))
        # One chunk must never stop the consumer (the daemon would stall), and a
        # failing stage must not keep the chunk from the others.
        for chunk in chunks:
            try:
                if chunk.kind in ("isgri", "pointing"):
                    self.localization.add(chunk)
            except Exception:
                log.exception("localization failed on %s; going on", chunk.name)
        try:
            for ready in await tracked:
                self.pointings.submit(ready)
        except Exception:
            log.exception("pointing tracker failed; going on")
        if before // 100 != self.summary.chunks // 100:
            self._forget_old()
            self.notifier.status(
                f"{self.summary.chunks} chunks, {len(self.stream.alerts)} alerts, "
                f"{self.pointings.running} pointings running"
            )

    def _consumer_ended(self, task: asyncio.Task, stop: asyncio.Event) -> None:
        """The consumer died: stop (exit 1, systemd restarts us) rather than stall silently."""
        if task.cancelled() or task.exception() is None:
            return
        log.critical("the chunk consumer failed; stopping", exc_info=task.exception())
        self.failed = True
        stop.set()

    def _forget_old(self) -> None:
        """Bound what a long-running daemon remembers: the last ``RECENT`` of each."""
        if self.replay is not None:
            return
        del self.summary.alerts[:-RECENT]
        del self.pointings.results[:-RECENT]
        del self.localization.updates[:-RECENT]
        for remembered in (self.stream.alerts, self._arrivals):
            for key in list(remembered)[:-RECENT]:  # insertion order: oldest first
                del remembered[key]

    def _on_trigger(self, record: AlertRecord) -> None:
        self._arrivals[record.alert.id] = record.chunk_arrival
        self.localization.request(record)
        if self.on_alert:
            self.on_alert(record)

    async def _poll_pointings(self, ingest: AsyncIngestLog, tracker: PointingTracker) -> None:
        while True:
            deadline = await ingest.call(tracker.next_deadline)
            wait = 1.0 if deadline is None else min(max(deadline - time.time(), 0.05), 5.0)
            await asyncio.sleep(wait)
            for ready in await ingest.call(tracker.poll):
                self.pointings.submit(ready)

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while not self.stalled:  # a stuck pipeline stops the pings: systemd restarts us
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _stall_guard(self, consumer: asyncio.Task, stop: asyncio.Event) -> None:
        """Chunks waiting and none taken for long: log what is stuck, then exit 1."""
        guard = self._guard
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            waited = guard.stalled()
            if waited is None:
                continue
            log.critical(
                "no chunk taken for %.0f s with %d waiting: the pipeline is stuck; stopping "
                "(exit 1) so that systemd restarts nrt. Stacks:\n%s",
                waited,
                guard.queue.qsize(),
                stacks(),
            )
            self.stalled = self.failed = True
            consumer.cancel()
            stop.set()
            return

    async def _maintain(self, cache: Cache, ingest: AsyncIngestLog, publisher: Publisher) -> None:
        while True:
            await asyncio.sleep(self.config.cache.gc_interval)
            try:  # on the ingest log's thread, like every write to it
                forgotten = await ingest.prune(INGEST_RETAIN)
                if forgotten:
                    log.info("ingest log: forgot %d chunks older than the last 2 days", forgotten)
            except Exception:
                log.exception("ingest log pruning failed")
            try:  # delivered alerts past [alerts] retain (their ids stay: never issued again)
                await publisher.prune(self.config.alerts.retain)
            except Exception:
                log.exception("alert outbox pruning failed")
            try:
                report = await asyncio.to_thread(
                    cache.gc, self.config.cache.max_bytes, self.config.cache.max_age
                )
                if report["evicted"]:
                    log.info(
                        "cache gc: evicted %d results (%d bytes)",
                        report["evicted"],
                        report["bytes_freed"],
                    )
            except Exception:
                log.exception("cache gc failed")

    async def _upkeep(self) -> None:
        """Every minute, off the loop: free heap pages go back to the kernel."""
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            await asyncio.to_thread(memory.trim)

    async def _gauges(
        self, publisher: Publisher, ingest: AsyncIngestLog, tracker: PointingTracker
    ) -> None:
        """Gauges that describe state rather than events, refreshed every few seconds."""
        while True:
            stats = await publisher.stats()
            for sink, pending in stats["pending"].items():
                metrics.OUTBOX_PENDING.labels(sink).set(pending)
            states = await ingest.call(tracker.states)
            for state in ("open", "covered", "grace", "announced"):
                metrics.POINTINGS.labels(state).set(states.get(state, 0))
            cache = self.pointings.cache
            metrics.CACHE_BYTES.labels("memory").set(cache.memory.nbytes)
            if cache.index is not None:
                held = await asyncio.to_thread(cache.index.stats)
                metrics.CACHE_BYTES.labels("local").set(held["bytes"])
            await asyncio.sleep(5.0)

    def reload(self) -> None:
        """SIGHUP: re-read the configuration file; apply what can change, log what cannot."""
        self.notifier.reloading()
        try:
            new = (
                configuration.load(self.config.source)
                if self.config.source != "(defaults)"
                else self.config
            )
        except configuration.ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            self.notifier.ready("reload refused (bad configuration)")
            return
        applied, restart = configuration.reload_changes(self.config, new)
        if restart:
            log.warning("these settings change only at restart: %s", ", ".join(restart))
        logging.getLogger().setLevel(new.logging.level)
        self.stream.reconfigure(new.trigger)
        self.stream.tense = new.alerts.tense
        self.config = new
        log.info("configuration reloaded: %s", ", ".join(applied) or "nothing changed")
        self.notifier.ready("configuration reloaded")


def _track(tracker: PointingTracker, known: list[tuple[str, Any]]) -> list[Any]:
    """Add committed chunks to the tracker (on the ingest log's thread); the pointings
    they make ready. A chunk the tracker fails on is logged and the others go on."""
    readies = []
    for name, record in known:
        try:
            if record is None:
                raise LookupError(f"chunk {name} is not in the ingest log")
            readies += tracker.add(record)
        except LookupError as exc:
            log.error("pointing tracker: %s", exc)
        except Exception:
            log.exception("pointing tracker failed on %s; going on", name)
    return readies
