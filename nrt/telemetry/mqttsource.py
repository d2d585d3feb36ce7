"""The MQTT source: the same FITS chunks, published on ``<prefix>/telemetry/<kind>``.

Nothing published while the daemon is away is lost: the client connects with a fixed
client id, ``clean_start=False`` and a session expiry interval (MQTT 5), so the broker
keeps the subscription and queues QoS 1 messages for it. A message is acknowledged
only after its chunk is on the queue and recorded (or after it was quarantined), so a
crash in between means the broker sends it again (and the content hash makes the
second delivery a no-op). ``Receive Maximum`` bounds how many unacknowledged messages
the broker sends at once, which turns a full queue into backpressure on the broker.

Payloads go through the same ``read_chunk`` as inbox files. The file name is the
MQTT 5 user property ``filename`` when present (it must be a plain, safe file name and
is then checked against the chunk's kind and pointing), else one is synthesized from
the kind and the content hash. Good payloads are kept under ``store_dir`` by content
hash (the per-pointing root elements read them from there); bad ones are written to
the quarantine with a reason and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import ssl
import time
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nrt import metrics
from nrt.mqttlink import PromptClient
from nrt.paths import state_dir
from nrt.telemetry.formats import KINDS, Chunk, TelemetryError, atomic_write
from nrt.telemetry.inbox import parse_off_loop
from nrt.telemetry.ingest import IngestLog, Problem, Quarantine, is_safe_name, printable
from nrt.telemetry.ingestthread import AsyncIngestLog

log = logging.getLogger(__name__)

SOURCE = "mqtt"


def topic_for(kind: str, prefix: str = "nrt") -> str:
    """The topic a chunk of ``kind`` is published on."""
    return f"{prefix}/telemetry/{kind}"


def filename_property(message: aiomqtt.Message) -> str | None:
    """The MQTT 5 user property ``filename``, if the publisher set one."""
    for key, value in getattr(message.properties, "UserProperty", None) or ():
        if key == "filename":
            return value
    return None


class MqttSource:
    """Subscribe to telemetry topics and put every new valid chunk on ``queue`` once."""

    def __init__(
        self,
        queue: asyncio.Queue[Chunk],
        log: IngestLog | AsyncIngestLog,
        quarantine: Quarantine,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = "nrt",
        client_id: str = "nrt-telemetry",
        session_expiry: int = 7 * 86400,
        receive_maximum: int = 32,
        store_dir: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.queue = queue
        #: the ingest log, used only through ``ingest`` (its thread) while running
        self.ingest = AsyncIngestLog.of(log)
        self.log = self.ingest.log
        self.quarantine = quarantine
        self.host, self.port, self.prefix = host, port, prefix
        self.client_id = client_id
        self.session_expiry = session_expiry
        self.receive_maximum = receive_maximum
        self.store_dir = Path(store_dir) if store_dir else state_dir() / "received"
        self.username, self.password, self.tls_context = username, password, tls_context
        self.backoff = backoff
        #: set while connected and subscribed; cleared on disconnect.
        self.connected = asyncio.Event()
        #: successful connections so far (a reconnect makes it > 1).
        self.connections = 0

    def _client(self) -> PromptClient:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        props.ReceiveMaximum = self.receive_maximum
        # fails a connect at once when the broker's side closes it (see nrt.mqttlink)
        client = PromptClient(
            self.host,
            self.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            username=self.username,
            password=self.password,
            tls_context=self.tls_context,
            timeout=10,
        )
        # Acknowledge only once a message is handled (aiomqtt exposes no switch for this).
        client._client.manual_ack_set(True)
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected (reconnecting with backoff) until ``stop`` is set."""
        delay = self.backoff[0]
        while not stop.is_set():
            session = asyncio.create_task(self._session())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not session.done():
                session.cancel()
            try:
                await session
                delay = self.backoff[0]
            except asyncio.CancelledError:
                if stop.is_set():
                    break
                raise
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    delay = self.backoff[0]  # we had a working session: retry quickly
                log.warning(
                    "MQTT %s:%s: %s; reconnecting in %.1f s", self.host, self.port, exc, delay
                )
            except Exception:  # e.g. a full disk while keeping a payload: it was not
                # acknowledged, so the broker sends it again after the reconnect
                log.exception("MQTT source failed; reconnecting in %.1f s", delay)
            finally:
                self.connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.backoff[1])

    async def _session(self) -> None:
        client = self._client()
        async with client:
            self.connections += 1
            await client.subscribe([(topic_for(kind, self.prefix), 1) for kind in KINDS])
            self.connected.set()
            async for message in client.messages:
                await self.handle(message)
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)

    # ------------------------------------------------------------ one message

    async def handle(self, message: aiomqtt.Message) -> None:
        """Parse one message: emit its chunk, skip a duplicate, or quarantine it."""
        arrived = time.monotonic()
        topic = str(message.topic)
        kind = topic.rsplit("/", 1)[-1]
        data = bytes(message.payload) if message.payload is not None else b""
        sha = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        given = filename_property(message)
        fallback = f"mqtt_{kind if kind in KINDS else 'unknown'}_{sha[:16]}.fits"
        if given is not None and not is_safe_name(given):
            await self._quarantine(
                data,
                fallback,
                sha,
                Problem(
                    f"user property filename={printable(given)!r} is not a plain file name "
                    f"(message on {topic})",
                    "set filename to the file's base name, e.g. acs_025600010010_000001.fits",
                ),
            )
            return
        if not await self.ingest.claim(sha):
            await self.ingest.count_duplicate(SOURCE)
            return
        try:
            result = await parse_off_loop(data, given, sha)
            if isinstance(result, TelemetryError):
                await self._quarantine(data, given or fallback, sha, Problem.of(result))
                return
            if result.kind != kind:
                await self._quarantine(
                    data,
                    given or fallback,
                    sha,
                    Problem(
                        f"topic: a {result.kind!r} chunk was published on {topic}",
                        f"publish {result.kind} chunks on {topic_for(result.kind, self.prefix)}",
                    ),
                )
                return
            path = await asyncio.to_thread(self._keep, data, sha)
            chunk = dataclasses.replace(result, name=given or fallback)
            await self.queue.put(chunk)
            # Queued before we yield: the consumer waits for this commit (see inbox.py).
            await self.ingest.record_chunk(chunk, path, SOURCE)
            metrics.INGEST_LATENCY.labels(SOURCE).observe(time.monotonic() - arrived)
        finally:  # stopped on a full queue: not acked, so the broker sends it again
            self.ingest.release(sha)

    def _keep(self, data: bytes, sha: str) -> Path:
        """Store good bytes by content hash (idempotent) for the root elements to read."""
        path = self.store_dir / sha[:2] / f"{sha}.fits"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        return path

    async def _quarantine(self, data: bytes, name: str, sha: str, problem: Problem) -> None:
        # The file and its record are written on the ingest log's thread.
        target = await self.ingest.call(self.quarantine.store, data, name, SOURCE, problem, sha)
        log.warning("quarantined MQTT payload as %s: %s", target.name, problem.problem)
