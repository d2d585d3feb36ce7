"""The MQTT source against a real mosquitto (persistent, on a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nrt.telemetry.formats import Chunk
from nrt.telemetry.ingest import IngestLog, Quarantine
from nrt.telemetry.mqttsource import MqttSource, topic_for
from tests.sources import factory as f
from tests.sources.harness import inbox_running
from tests.support.tcpproxy import TcpProxy


async def publish(broker, kind: str, data: bytes, filename: str | None = None) -> None:
    """Publish like a producer: QoS 1, MQTT 5, optional `filename` user property."""
    props = None
    if filename is not None:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("filename", filename)]
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.publish(topic_for(kind), data, qos=1, properties=props)


@contextlib.asynccontextmanager
async def mqtt_running(
    root: Path, broker, log: IngestLog | None = None, **options
) -> AsyncIterator[tuple[MqttSource, asyncio.Queue[Chunk]]]:
    own_log = log is None
    log = log or IngestLog()
    queue: asyncio.Queue[Chunk] = asyncio.Queue(100)
    options.setdefault("backoff", (0.1, 0.5))
    source = MqttSource(
        queue, log, Quarantine(root / "quarantine", log), port=broker.port, **options
    )
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    await asyncio.wait_for(source.connected.wait(), 10)
    try:
        yield source, queue
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        if own_log:
            log.close()


async def take(queue: asyncio.Queue[Chunk], n: int, timeout: float = 5.0) -> list[Chunk]:
    return [await asyncio.wait_for(queue.get(), timeout) for _ in range(n)]


def test_payload_becomes_a_chunk_stored_by_content(tmp_path: Path, mosquitto) -> None:
    data = f.acs()

    async def scenario() -> None:
        async with mqtt_running(tmp_path, mosquitto) as (source, queue):
            await publish(mosquitto, "acs", data, filename=f.name("acs", seq=4))
            await publish(mosquitto, "hk", f.hk())  # no filename: one is made up
            acs, hk = await take(queue, 2)
            assert acs.name == f.name("acs", seq=4)
            assert acs.sha256 == hashlib.sha256(data).hexdigest()
            assert hk.name.startswith("mqtt_hk_") and hk.kind == "hk"
            record = await source.ingest.committed(acs)  # as the daemon's consumer waits
            assert record is not None and record.source == "mqtt"
            assert record.path.read_bytes() == data
            await publish(mosquitto, "acs", data, filename=f.name("acs", seq=5))  # same bytes
            await asyncio.sleep(0.3)
            assert queue.empty()
            assert source.log.counts[("mqtt", "duplicate")] == 1

    asyncio.run(scenario())


def test_messages_published_while_away_are_delivered(tmp_path: Path, mosquitto) -> None:
    payloads = [f.acs(t0=1000.0 + 5 * s, seed=s) for s in range(3)]

    async def scenario() -> None:
        log = IngestLog()
        async with mqtt_running(tmp_path, mosquitto, log=log):
            pass  # first connection: the broker now keeps a session for our client id
        await publish(mosquitto, "acs", payloads[0])
        await publish(mosquitto, "acs", payloads[1])
        mosquitto.stop()  # the broker restarts too (persistence on disk)
        mosquitto.start()
        await publish(mosquitto, "acs", payloads[2])
        async with mqtt_running(tmp_path, mosquitto, log=log) as (_source, queue):
            got = await take(queue, 3)
            assert [c.sha256 for c in got] == [hashlib.sha256(p).hexdigest() for p in payloads]
            await asyncio.sleep(0.3)
            assert queue.empty()
        log.close()

    asyncio.run(scenario())


def test_reconnects_after_the_broker_goes_away(tmp_path: Path, mosquitto) -> None:
    async def scenario() -> None:
        async with mqtt_running(tmp_path, mosquitto) as (source, queue):
            mosquitto.stop()
            for _ in range(100):
                if not source.connected.is_set():
                    break
                await asyncio.sleep(0.05)
            assert not source.connected.is_set()
            await asyncio.sleep(0.5)  # a few failed attempts, with backoff
            mosquitto.start()
            await asyncio.wait_for(source.connected.wait(), 10)
            assert source.connections == 2
            await publish(mosquitto, "hk", f.hk())
            assert (await take(queue, 1))[0].kind == "hk"

    asyncio.run(scenario())


def test_bad_payloads_are_quarantined_and_good_ones_flow(tmp_path: Path, mosquitto) -> None:
    bad = [
        ("acs", b"this is not FITS at all", None, "not FITS"),
        ("acs", f.acs()[:4000], f.name("acs", seq=2), "truncated"),
        ("acs", f.acs(seed=3), "../../etc/passwd", "not a plain file name"),
        ("acs", f.acs(seed=4), "acs_025600010010_\u00e9.fits", "not a plain file name"),
        ("acs", f.isgri(), None, "topic"),
        ("acs", f.acs(seed=5, pointing=f.P2), f.name("acs", seq=6), "does not match"),
    ]

    async def scenario() -> None:
        async with mqtt_running(tmp_path, mosquitto) as (source, queue):
            for i, (kind, data, filename, _words) in enumerate(bad):
                await publish(mosquitto, kind, data, filename)
                await publish(mosquitto, "hk", f.hk(t0=1000.0 + 5 * i), f.name("hk", seq=i))
            got = await take(queue, len(bad))
            assert [c.name for c in got] == [f.name("hk", seq=i) for i in range(len(bad))]
            await asyncio.sleep(0.2)
            assert source.log.counts[("mqtt", "quarantined")] == len(bad)
            qdir = source.quarantine.directory
            reasons = [json.loads(p.read_text()) for p in sorted(qdir.glob("*.reason"))]
            assert len(reasons) == len(bad)
            problems = " | ".join(r["problem"] for r in reasons)
            for _kind, _data, _name, words in bad:
                assert words in problems
            for entry in qdir.iterdir():  # nothing escaped the quarantine directory
                assert entry.parent == qdir and entry.name.isascii()
            assert not (tmp_path / "etc").exists()

    asyncio.run(scenario())


def test_inbox_and_mqtt_deliver_the_same_content_once(tmp_path: Path, mosquitto) -> None:
    data = f.isgri()

    async def scenario() -> None:
        async with (
            inbox_running(tmp_path) as r,
            mqtt_running(tmp_path, mosquitto, log=r.log) as (_source, mqueue),
        ):
            await publish(mosquitto, "isgri", data, f.name("isgri"))
            await take(mqueue, 1)
            f.rename_in(r.inbox, f.name("isgri"), data)
            assert await r.quiet(0.5) == []
            assert r.log.counts[("inbox", "duplicate")] == 1

    asyncio.run(scenario())


def test_message_not_yet_handled_when_stopped_is_delivered_again(tmp_path: Path, mosquitto) -> None:
    payloads = [f.hk(t0=1000.0 + 5 * s) for s in range(3)]

    async def scenario() -> None:
        log = IngestLog()
        async with mqtt_running(tmp_path, mosquitto, log=log) as (source, queue):
            full: asyncio.Queue[Chunk] = asyncio.Queue(1)
            source.queue = full  # room for one: the second waits, unacknowledged
            for data in payloads:
                await publish(mosquitto, "hk", data)
            first = await asyncio.wait_for(full.get(), 5)
            await asyncio.sleep(0.3)  # the third is now the one being waited on
        # stopped with the second chunk on the (now gone) queue and the third in hand
        async with mqtt_running(tmp_path, mosquitto, log=log) as (_source, queue):
            rest = await take(queue, 1)
            await asyncio.sleep(0.3)
            assert queue.empty()
        got = [first.sha256, rest[0].sha256]
        assert got == [hashlib.sha256(p).hexdigest() for p in (payloads[0], payloads[2])]
        assert log.record(hashlib.sha256(payloads[1]).hexdigest()) is not None
        log.close()

    asyncio.run(scenario())


def test_a_payload_that_cannot_be_kept_is_retried_not_lost(tmp_path: Path, mosquitto) -> None:
    store = tmp_path / "received"
    store.write_text("a file where the store directory should be")  # like a full disk
    data = f.acs()

    async def scenario() -> None:
        async with mqtt_running(tmp_path, mosquitto, store_dir=store) as (source, queue):
            await publish(mosquitto, "acs", data)
            await asyncio.sleep(1.0)
            assert queue.empty() and source.connections >= 2  # failed, reconnected, again
            store.unlink()  # the operator frees the disk
            (chunk,) = await take(queue, 1, timeout=10)
            assert chunk.sha256 == hashlib.sha256(data).hexdigest()
            assert (await source.ingest.committed(chunk)).path.read_bytes() == data

    asyncio.run(scenario())


def test_a_slow_consumer_loses_nothing(tmp_path: Path, mosquitto) -> None:
    payloads = [f.hk(t0=1000.0 + 5 * s) for s in range(60)]

    async def scenario() -> None:
        async with mqtt_running(tmp_path, mosquitto, receive_maximum=4) as (source, _queue):
            source.queue = slow = asyncio.Queue(2)
            async with aiomqtt.Client(
                "127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as client:
                for data in payloads:
                    await client.publish(topic_for("hk"), data, qos=1)
            got = []
            for _ in payloads:
                got.append((await asyncio.wait_for(slow.get(), 10)).sha256)
                await asyncio.sleep(0.005)
            assert got == [hashlib.sha256(p).hexdigest() for p in payloads]  # all, in order

    asyncio.run(scenario())


def test_a_connection_closed_before_connack_is_retried_at_once(tmp_path: Path, mosquitto) -> None:
    """aiomqtt alone waits out its 10 s timeout after each such attempt (nrt.mqttlink)."""
    proxy = TcpProxy(mosquitto.port).start()
    proxy.cut("reset")  # every connection accepted, then closed before any CONNACK

    async def scenario() -> int:
        log = IngestLog()
        queue: asyncio.Queue[Chunk] = asyncio.Queue(10)
        source = MqttSource(
            queue, log, Quarantine(tmp_path / "q", log), port=proxy.port, backoff=(0.1, 0.5)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop))
        try:
            await asyncio.sleep(3)
            attempts = proxy.refused
            proxy.restore()
            await asyncio.wait_for(source.connected.wait(), 5)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            log.close()
        return attempts

    try:
        attempts = asyncio.run(scenario())
    finally:
        proxy.stop()
    assert attempts >= 4, f"{attempts} connect attempts in 3 s: each waited for a timeout"
