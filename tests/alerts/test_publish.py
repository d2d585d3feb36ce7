"""Publication through a real mosquitto: outages, ordering, properties, sinks."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from nrt.alerts import AlertsConfig, MqttConfig, Outbox, Publisher
from nrt.alerts.mqtt import JSON_TYPE, VOEVENT_TYPE
from nrt.alerts.outbox import default_path
from tests.alerts.conftest import broker_in
from tests.alerts.factory import make_burst
from tests.alerts.subscriber import Collector
from tests.support.mosquitto import Mosquitto
from tests.support.tcpproxy import TcpProxy


def assert_each_once_in_order(collector: Collector, alerts) -> None:
    keys = [m.key for m in collector.alerts()]
    assert sorted(keys) == sorted(a.key for a in alerts), "missing or duplicated alerts"
    for alert_id in {a.id for a in alerts}:
        numbers = [n for i, n in keys if i == alert_id]
        assert numbers == sorted(numbers), f"{alert_id} arrived out of order: {numbers}"


def test_broker_outage_delays_but_loses_nothing(tmp_path: Path) -> None:
    broker = broker_in(tmp_path / "mq").start()
    collector = Collector("127.0.0.1", broker.port, client_id="persistent-sub").start()
    alerts = make_burst(n_ids=6, per_id=3)
    delivered: list = []
    try:
        broker.stop()

        async def publish_through_outage() -> None:
            config = AlertsConfig(mqtt=MqttConfig(url=broker.url), retry_max=0.3)
            async with Publisher(config, on_delivered=lambda *a: delivered.append(a)) as publisher:
                for alert in alerts:
                    assert await publisher.submit(alert)
                assert not await publisher.submit(alerts[0]), "resubmission must be a no-op"
                await asyncio.sleep(0.8)  # several failed attempts
                assert publisher.outbox.count_pending() == len(alerts)
                assert "unreachable" in publisher.errors["mqtt"]
                broker.start()
                await publisher.flush(timeout=20)
                assert publisher.errors["mqtt"] is None
                assert [(row.id, row.record_number) for _, row, _ in delivered] == [
                    a.key for a in alerts
                ]
                assert all(age >= 0.8 for _, _, age in delivered), "delayed by the outage"

        asyncio.run(publish_through_outage())
        collector.wait_for(lambda c: len(c.on("/voevent")) >= len(alerts), settle=0.5)
        assert_each_once_in_order(collector, alerts)
        assert sorted(m.key for m in collector.on("/voevent")) == sorted(a.key for a in alerts)
        first = collector.alerts()[0]
        assert first.topic == "nrt/alerts/acs"
        assert first.content_type == JSON_TYPE and first.expiry is not None
        assert 0 < first.expiry <= 7 * 86400
        assert collector.on("/voevent")[0].content_type == VOEVENT_TYPE
        body = json.loads(first.payload)
        assert (body["id"], body["record_number"]) == first.key
    finally:
        collector.stop()
        broker.stop()


def test_publish_in_flight_when_the_link_drops_is_retried_at_once(tmp_path: Path) -> None:
    """A publish awaiting its PUBACK when the connection is lost fails then, not at the
    acknowledgement timeout, and goes again as soon as the link is back: the outage
    delays it by the outage and the reconnect only. A proxy first swallows the bytes
    (so the PUBACK cannot come: the publish is surely in flight), then resets the
    connection and refuses new ones for a while."""
    broker = broker_in(tmp_path / "mq").start()
    proxy = TcpProxy(broker.port).start()
    collector = Collector("127.0.0.1", broker.port, client_id="in-flight-sub").start()
    before, in_flight = make_burst(n_ids=2, per_id=1)
    mqtt = MqttConfig(url=f"mqtt://127.0.0.1:{proxy.port}")
    config = AlertsConfig(mqtt=mqtt, retry_initial=0.05, retry_max=0.2)
    # Well under the acknowledgement timeout, and far above the reconnect time
    # (backoff at most retry_max, then a loopback connect).
    bound = mqtt.timeout / 2
    assert bound > 10 * config.retry_max
    outage = 1.5
    delivered: dict[tuple[str, int], float] = {}

    def on_delivered(sink, row, age) -> None:
        delivered[(row.id, row.record_number)] = time.monotonic()

    async def until(predicate, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"{what}: not within {timeout:.1f} s"
            await asyncio.sleep(0.01)
        return time.monotonic()

    async def scenario() -> None:
        async with Publisher(config, on_delivered=on_delivered) as publisher:
            assert await publisher.submit(before)
            await publisher.flush(timeout=10)
            client = publisher.mqtt.client
            proxy.cut("blackhole")
            assert await publisher.submit(in_flight)
            # Both renderings handed to the broker, PUBACKs awaited (aiomqtt's own
            # record of pending publishes: the only place that says "in flight").
            await until(lambda: len(client._pending_publishes) == 2, 5, "publish in flight")
            await asyncio.sleep(0.5)  # waiting for the PUBACK, as at a real cut
            assert publisher.errors["mqtt"] is None and not delivered.get(in_flight.key)
            proxy.cut("reset")
            cut = time.monotonic()
            failed = await until(lambda: publisher.errors["mqtt"], bound, "the publish failed")
            assert failed - cut < bound, "failed at the timeout, not when the link dropped"
            assert "connection lost" in publisher.errors["mqtt"]
            # Reconnect attempts during the cut fail at once too (closed before CONNACK).
            await asyncio.sleep(max(0.0, outage - (time.monotonic() - cut)))
            assert in_flight.key not in delivered
            proxy.restore()
            restored = time.monotonic()
            done = await until(lambda: in_flight.key in delivered, 2 * mqtt.timeout, "resent")
            assert done - restored < bound, (
                f"delivered {done - restored:.2f} s after the link returned "
                f"(ack timeout {mqtt.timeout} s)"
            )
            assert publisher.errors["mqtt"] is None

    try:
        asyncio.run(scenario())
        collector.wait_for(lambda c: len(c.on("/voevent")) >= 2)
        keys = [m.key for m in collector.alerts()]
        assert set(keys) == {before.key, in_flight.key}, "one id per burst, nothing lost"
        assert keys.count(before.key) == 1 and 1 <= keys.count(in_flight.key) <= 2
        store = Outbox(default_path(), readonly=True)
        history = {(row.id, row.record_number): d for row, d in store.history()}
        store.close()
        state, attempts, _ = history[in_flight.key]["mqtt"]
        assert state == "sent" and attempts >= 2, "a failed attempt, then the delivery"
        assert proxy.connections >= 2, "it must have reconnected"
    finally:
        collector.stop()
        proxy.stop()
        broker.stop()


def test_status_and_health_are_retained(tmp_path: Path, broker: Mosquitto) -> None:
    async def session() -> None:
        config = AlertsConfig(mqtt=MqttConfig(url=broker.url, prefix="obs1"))
        async with Publisher(config) as publisher:
            # Online (retained) as soon as it runs, before any alert.
            await asyncio.wait_for(publisher.mqtt.connected.wait(), 10)
            first = Collector("127.0.0.1", broker.port, ("obs1/status",), "first-sub")
            await asyncio.to_thread(first.start)
            await asyncio.to_thread(first.wait_for, lambda c: len(c.messages) >= 1)
            first.stop()
            assert json.loads(first.messages[0].payload)["status"] == "online"
            assert first.messages[0].retain
            await publisher.submit(make_burst(1, 1)[0])
            await publisher.flush(timeout=10)
            await publisher.publish_health("ACS", {"pointing": "029400210010", "status": 0})
            late = Collector("127.0.0.1", broker.port, ("obs1/#",), "late-sub")
            await asyncio.to_thread(late.start)
            await asyncio.to_thread(
                late.wait_for, lambda c: len(c.on("/status")) and len(c.on("/health/acs"))
            )
            late.stop()
            status = json.loads(late.on("/status")[-1].payload)
            assert status["status"] == "online" and late.on("/status")[-1].retain
            health = late.on("/health/acs")[-1]
            assert health.retain and json.loads(health.payload)["pointing"] == "029400210010"
            assert not late.alerts(), "alerts are not retained"

    asyncio.run(session())
    after = Collector("127.0.0.1", broker.port, ("obs1/status",), "after-sub").start()
    after.wait_for(lambda c: len(c.messages) >= 1)
    after.stop()
    assert json.loads(after.messages[-1].payload)["status"] == "offline"


def test_other_sinks_cannot_block_or_lose_mqtt(tmp_path: Path, broker: Mosquitto) -> None:
    """A hook that hangs and a directory that cannot be written leave MQTT untouched;
    a working hook and directory get every revision."""
    collector = Collector("127.0.0.1", broker.port, client_id="sink-sub").start()
    alerts = make_burst(n_ids=3, per_id=2)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("in the way")
    hung = [sys.executable, "-c", "import time; time.sleep(60)"]

    async def with_broken_sinks() -> None:
        config = AlertsConfig(
            mqtt=MqttConfig(url=broker.url),
            directory=not_a_dir / "alerts",
            hook=hung,
            hook_timeout=30,
            outbox=tmp_path / "broken.sqlite",
        )
        async with Publisher(config) as publisher:
            for alert in alerts:
                await publisher.submit(alert)
            # Only MQTT must be done; the wait runs off the loop so delivery goes on.
            await asyncio.wait_for(_mqtt_drained(publisher), timeout=5)
            assert publisher.outbox.count_pending("hook") == len(alerts)
            assert "cannot write alert files" in (publisher.errors["directory"] or "")

    asyncio.run(with_broken_sinks())
    collector.wait_for(lambda c: len(c.alerts()) >= len(alerts))
    assert_each_once_in_order(collector, alerts)
    collector.stop()

    record = tmp_path / "hook.log"
    hook = [
        sys.executable,
        "-c",
        "import os, sys, json; d = json.load(sys.stdin); "
        f"open({str(record)!r}, 'a').write("
        "f\"{os.environ['NRT_ALERT_ID']} {os.environ['NRT_ALERT_RECORD_NUMBER']} {d['id']}\\n\")",
    ]
    outdir = tmp_path / "pickup"

    async def with_working_sinks() -> None:
        config = AlertsConfig(mqtt=MqttConfig(url=broker.url), directory=outdir, hook=hook)
        async with Publisher(config) as publisher:
            for alert in alerts:
                await publisher.submit(alert)
            await publisher.flush(timeout=20)

    asyncio.run(with_working_sinks())
    lines = record.read_text().splitlines()
    assert lines == [f"{a.id} {a.record_number} {a.id}" for a in alerts]
    for alert in alerts:
        stem = f"{alert.id}-{alert.record_number}"
        document = json.loads((outdir / f"{stem}.json").read_text())
        assert (document["id"], document["record_number"]) == alert.key
        assert (outdir / f"{stem}.xml").read_bytes().startswith(b"<?xml")
    assert not list(outdir.glob(".*")), "temporary files left behind"


async def _mqtt_drained(publisher: Publisher) -> None:
    while publisher.outbox.count_pending("mqtt"):
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("count", [3])
def test_outbox_survives_a_restart_of_the_publisher(tmp_path: Path, broker, count) -> None:
    """Alerts committed by a publisher that never reached a broker go out on the next start."""
    alerts = make_burst(n_ids=count, per_id=1)
    dead = MqttConfig(url="mqtt://127.0.0.1:9")  # discard port: nothing listens

    async def first_run() -> None:
        async with Publisher(AlertsConfig(mqtt=dead)) as publisher:
            for alert in alerts:
                await publisher.submit(alert)

    asyncio.run(first_run())
    collector = Collector("127.0.0.1", broker.port, client_id="restart-sub").start()

    async def second_run() -> None:
        async with Publisher(AlertsConfig(mqtt=MqttConfig(url=broker.url))) as publisher:
            await publisher.flush(timeout=10)

    asyncio.run(second_run())
    collector.wait_for(lambda c: len(c.alerts()) >= count)
    collector.stop()
    assert_each_once_in_order(collector, alerts)


def test_idle_publisher_reconnects_and_restores_retained_state(tmp_path: Path) -> None:
    """A broker restarted without persistence forgets retained messages; the idle
    publisher notices the lost link, reconnects, and announces status and health again."""
    broker = broker_in(tmp_path / "mq", persistence=False).start()

    async def scenario() -> None:
        config = AlertsConfig(mqtt=MqttConfig(url=broker.url), retry_max=0.3)
        async with Publisher(config) as publisher:
            mqtt = publisher.mqtt
            await asyncio.wait_for(mqtt.connected.wait(), 10)
            await publisher.publish_health("isgri", {"noisy_pixels": 3})
            broker.stop()
            broker.start()
            await asyncio.sleep(0.1)
            await asyncio.wait_for(mqtt.connected.wait(), 10)
            late = Collector("127.0.0.1", broker.port, ("nrt/#",), "after-restart")
            await asyncio.to_thread(late.start)
            await asyncio.to_thread(
                late.wait_for, lambda c: len(c.on("/status")) and len(c.on("/health/isgri"))
            )
            late.stop()
            assert json.loads(late.on("/status")[-1].payload)["status"] == "online"
            assert json.loads(late.on("/health/isgri")[-1].payload) == {"noisy_pixels": 3}

    try:
        asyncio.run(scenario())
    finally:
        broker.stop()


def test_a_failing_hook_is_retried_then_marked_failed(tmp_path: Path, broker: Mosquitto) -> None:
    alerts = make_burst(2, 1)
    failing = [sys.executable, "-c", "import sys; sys.exit('no route to the pager')"]
    config = AlertsConfig(
        mqtt=MqttConfig(url=broker.url), hook=failing, sink_attempts=2, retry_initial=0.05
    )

    async def run() -> None:
        async with Publisher(config) as publisher:
            for alert in alerts:
                await publisher.submit(alert)
            await publisher.flush(timeout=10)  # returns: failed rows are no longer pending

    asyncio.run(run())
    store = Outbox(config.outbox or default_path(), readonly=True)
    states = [deliveries for _, deliveries in store.history()]
    store.close()
    assert [d["mqtt"][0] for d in states] == ["sent", "sent"]
    assert [d["hook"][:2] for d in states] == [("failed", 2), ("failed", 2)]
    assert "exited 1" in states[0]["hook"][2] and "no route to the pager" in states[0]["hook"][2]
