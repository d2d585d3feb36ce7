"""Alert latency: publish() call -> receipt by a subscriber, on loopback.

nrt's full path (commit to the SQLite outbox, render JSON and VOEvent, QoS 1
publish via aiomqtt) against the floor: bare paho-mqtt QoS 1 publish of the same
JSON bytes. One alert at a time (each waits for its receipt), 1000 each, a real
mosquitto, a subscriber in its own process (both sides read CLOCK_MONOTONIC).

Run: .venv/bin/python tests/benchmarks/bench_alerts.py [N]
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402

from nrt.alerts import AlertsConfig, MqttConfig, Publisher  # noqa: E402
from tests.alerts.factory import make_burst  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

SUBSCRIBER = r"""
import sys, time
import paho.mqtt.client as paho
c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
def on_connect(client, userdata, flags, rc, props):
    client.subscribe(sys.argv[2], qos=1)
c.on_connect = on_connect
c.on_subscribe = lambda *a: print("ready", flush=True)
c.on_message = lambda client, userdata, m: print(time.monotonic_ns(), flush=True)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_forever()
"""


def percentiles(ns: list[int]) -> tuple[float, float]:
    ms = sorted(x / 1e6 for x in ns)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]


async def measure(port: int, publish_one, items) -> list[int]:
    sub = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SUBSCRIBER,
        str(port),
        "nrt/alerts/+",
        stdout=asyncio.subprocess.PIPE,
    )
    assert (await sub.stdout.readline()).strip() == b"ready"
    latencies = []
    try:
        for item in items:
            t0 = time.monotonic_ns()
            await publish_one(item)
            received = int(await asyncio.wait_for(sub.stdout.readline(), 10))
            latencies.append(received - t0)
    finally:
        sub.kill()
        await sub.wait()
    return latencies


async def bench_paho(port: int, payloads: list[bytes]) -> list[int]:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:

        async def publish_one(payload: bytes) -> None:
            client.publish("nrt/alerts/acs", payload, qos=1)

        return await measure(port, publish_one, payloads)
    finally:
        client.loop_stop()
        client.disconnect()


async def bench_nrt(port: int, alerts, outbox: Path, synchronous: str) -> list[int]:
    config = AlertsConfig(
        mqtt=MqttConfig(url=f"mqtt://127.0.0.1:{port}"), outbox=outbox, synchronous=synchronous
    )
    async with Publisher(config) as publisher:
        await publisher.flush(timeout=10)  # connected before the clock starts
        return await measure(port, publisher.submit, alerts)


def bench_commit(path: Path, n: int) -> list[int]:
    """The disk's share: one fsync'd WAL commit of a row, alone (no MQTT)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (payload BLOB)")
    latencies = []
    for _ in range(n):
        t0 = time.monotonic_ns()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 2000,))
        db.execute("COMMIT")
        latencies.append(time.monotonic_ns() - t0)
    db.close()
    return latencies


def main(n: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Mosquitto(
            workdir=tmp / "mq", persistence=False, extra=f"user {getpass.getuser()}"
        ).start()
        try:
            rows = []
            warm = make_burst(20, 1)
            for sync in ("FULL", "NORMAL"):
                asyncio.run(bench_nrt(broker.port, warm, tmp / f"warm-{sync}.sqlite", sync))
                alerts = make_burst(n, 1)
                lat = asyncio.run(bench_nrt(broker.port, alerts, tmp / f"{sync}.sqlite", sync))
                rows.append((f"nrt outbox+publish (sqlite synchronous={sync})", lat))
            payloads = [json.dumps(a.to_json(), separators=(",", ":")).encode() for a in alerts]
            asyncio.run(bench_paho(broker.port, payloads[:20]))
            rows.insert(
                0,
                (
                    "bare paho-mqtt QoS 1, same bytes (floor)",
                    asyncio.run(bench_paho(broker.port, payloads)),
                ),
            )
            rows.append(
                (
                    "(disk alone: fsync'd SQLite commit, no MQTT)",
                    bench_commit(tmp / "commit.sqlite", n),
                )
            )
        finally:
            broker.stop()
    floor50, _ = percentiles(rows[0][1])
    print(f"alert latency, publish() call -> subscriber receipt, loopback, n={n}")
    print(f"{'path':<48} {'p50 ms':>8} {'p99 ms':>8} {'p50/floor':>10} {'+p50 ms':>8}")
    for name, lat in rows:
        p50, p99 = percentiles(lat)
        print(f"{name:<48} {p50:8.3f} {p99:8.3f} {p50 / floor50:10.2f} {p50 - floor50:8.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
