"""Where committed alerts go: the MQTT broker, a directory, a command hook.

Each sink delivers one outbox row at a time from its own task (see
`nrt.alerts.publisher`), so a slow disk or a hung hook delays only itself.
A sink raises on failure; the publisher records it and retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt

from nrt.alerts.model import slug
from nrt.alerts.mqtt import (
    JSON_TYPE,
    VOEVENT_TYPE,
    CheckedClient,
    MqttConfig,
    PublishRefused,
    alert_properties,
    make_client,
    message_properties,
    status_payload,
)
from nrt.alerts.outbox import OutboxRow

log = logging.getLogger("nrt.alerts")


class Sink:
    """Base of all sinks: a name (the outbox's delivery key) and `deliver`."""

    name: str = "sink"
    #: None: retry forever (MQTT must never lose an alert); else give up after this many.
    max_attempts: int | None = 10

    async def deliver(self, rows: Sequence[OutboxRow]) -> int:
        """Deliver `rows` in order; return how many (a prefix) were delivered,
        raising the first failure after recording what got through."""
        raise NotImplementedError

    async def open(self) -> None:
        """Get ready to deliver (MQTT: connect and announce); a no-op for most sinks."""

    async def lost(self) -> None:
        """Return when the sink needs `open()` again (MQTT: the connection dropped)."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        """Release connections; pending rows stay in the outbox."""


class MqttSink(Sink):
    """QoS 1 publication of the JSON and VOEvent renderings, plus the retained
    status (with an offline will) and health topics."""

    name = "mqtt"
    max_attempts = None

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.client: CheckedClient | None = None
        self.health: dict[str, bytes] = {}
        #: Set while connected and announced online (the daemon waits for it at start).
        self.connected = asyncio.Event()
        self._connect_lock = asyncio.Lock()

    async def open(self) -> None:
        await self._connected()

    async def lost(self) -> None:
        client = self.client
        if client is not None:
            # shield: cancelling this wait must not cancel aiomqtt's own future
            with contextlib.suppress(Exception):
                await asyncio.shield(client._disconnected)

    async def _connected(self) -> CheckedClient:
        async with self._connect_lock:
            if self.client is not None and _alive(self.client):
                return self.client
            await self._drop()
            will = aiomqtt.Will(
                self.config.status_topic, status_payload("offline"), qos=1, retain=True
            )
            client = make_client(self.config, will=will)
            await client.__aenter__()
            self.client = client
            try:
                await client.publish_checked(
                    self.config.status_topic,
                    status_payload("online", since=time.time(), pid=os.getpid()),
                    retain=True,
                    properties=message_properties(JSON_TYPE, None),
                )
                for instrument, payload in self.health.items():
                    await self._publish_health(client, instrument, payload)
            except BaseException:
                await self._drop()
                raise
            log.info("connected to MQTT broker %s", self.config.url)
            self.connected.set()
            return client

    async def _drop(self) -> None:
        self.connected.clear()
        client, self.client = self.client, None
        if client is not None:
            lost = client._disconnected  # retrieve a lost connection's error: no asyncio noise
            if lost.done() and not lost.cancelled():
                lost.exception()
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _one(self, client: CheckedClient, row: OutboxRow) -> None:
        alert = row.alert()
        expiry = self.config.message_expiry
        await asyncio.gather(
            client.publish_checked(
                self.config.alert_topic(alert),
                row.json.encode(),
                properties=alert_properties(alert, JSON_TYPE, expiry),
            ),
            client.publish_checked(
                self.config.voevent_topic(alert),
                row.voevent,
                properties=alert_properties(alert, VOEVENT_TYPE, expiry),
            ),
        )

    async def deliver(self, rows: Sequence[OutboxRow]) -> int:
        client = await self._connected()
        # Hand every row to paho in order at once (they go out in order on one
        # connection) and wait for all PUBACKs; only an unbroken prefix counts.
        results = await asyncio.gather(
            *(self._one(client, row) for row in rows), return_exceptions=True
        )
        for n, result in enumerate(results):
            if isinstance(result, BaseException):
                if not isinstance(result, PublishRefused):
                    await self._drop()  # lost or timed out: reconnect on the next try
                raise _Partial(n, result)
        return len(rows)

    async def publish_health(self, instrument: str, summary: dict) -> None:
        """Retained health summary; kept and re-sent on reconnect, so the broker's
        retained copy is always the latest even across outages."""
        payload = json.dumps(summary, sort_keys=True, separators=(",", ":")).encode()
        key = slug(instrument)
        self.health[key] = payload
        client = self.client
        if client is not None and _alive(client):
            try:
                await self._publish_health(client, key, payload)
            except aiomqtt.MqttError as exc:
                log.warning("health for %s not published now (%s); sent on reconnect", key, exc)

    async def _publish_health(self, client: CheckedClient, key: str, payload: bytes) -> None:
        await client.publish_checked(
            self.config.health_topic(key),
            payload,
            retain=True,
            properties=message_properties(JSON_TYPE, self.config.health_expiry),
        )

    async def close(self) -> None:
        client = self.client
        if client is not None and _alive(client):
            # A clean disconnect does not fire the will: say offline ourselves.
            with contextlib.suppress(Exception):
                await client.publish_checked(
                    self.config.status_topic,
                    status_payload("offline", since=time.time()),
                    retain=True,
                    properties=message_properties(JSON_TYPE, None),
                    timeout=2.0,
                )
        await self._drop()


def _alive(client: CheckedClient) -> bool:
    """Whether the connection is up (aiomqtt keeps this in a private future)."""
    return not client._disconnected.done()


class _Partial(Exception):
    """`delivered` rows got through before `error` (used by the publisher loop)."""

    def __init__(self, delivered: int, error: BaseException) -> None:
        super().__init__(str(error))
        self.delivered = delivered
        self.error = error


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class DirectorySink(Sink):
    """``<dir>/<id>-<record_number>.json`` and ``.xml``, each renamed into place
    complete, for pickup by other systems. Writes run in a thread."""

    name = "directory"

    def __init__(self, directory: str | Path, max_attempts: int | None = 10) -> None:
        self.directory = Path(directory)
        self.max_attempts = max_attempts

    def _write(self, row: OutboxRow) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{row.id}-{row.record_number}"
        _write_atomic(self.directory / f"{stem}.xml", row.voevent)
        # JSON last: a watcher keyed on *.json finds the XML already there.
        _write_atomic(self.directory / f"{stem}.json", row.json.encode())

    async def deliver(self, rows: Sequence[OutboxRow]) -> int:
        for n, row in enumerate(rows):
            try:
                await asyncio.to_thread(self._write, row)
            except OSError as exc:
                msg = f"cannot write alert files in {self.directory}: {exc}"
                raise _Partial(n, OSError(msg)) from None
        return len(rows)


class HookSink(Sink):
    """Run a command per alert revision: the JSON on stdin, the key fields in
    ``NRT_ALERT_*`` variables. No shell; killed after `timeout` seconds."""

    name = "hook"

    def __init__(
        self, command: Sequence[str], timeout: float = 30.0, max_attempts: int | None = 5
    ) -> None:
        if not command:
            raise ValueError("alert hook command is empty; give the program and its arguments")
        self.command = list(command)
        self.timeout = timeout
        self.max_attempts = max_attempts

    async def _run(self, row: OutboxRow) -> None:
        env = dict(
            os.environ,
            NRT_ALERT_ID=row.id,
            NRT_ALERT_RECORD_NUMBER=str(row.record_number),
            NRT_ALERT_TYPE=row.alert_type,
            NRT_ALERT_INSTRUMENT=row.instrument,
        )
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(row.json.encode()), self.timeout)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-300:]
            raise RuntimeError(
                f"alert hook {self.command[0]} exited {proc.returncode} for {row.id}: {tail}"
            )

    async def deliver(self, rows: Sequence[OutboxRow]) -> int:
        for n, row in enumerate(rows):
            try:
                await self._run(row)
            except TimeoutError:
                raise _Partial(
                    n, TimeoutError(f"alert hook {self.command[0]} ran over {self.timeout} s")
                ) from None
            except (OSError, RuntimeError) as exc:
                raise _Partial(n, exc) from None
        return len(rows)
