"""Found by the soak: a broker that stays away while the publisher is idle must not kill it.

The publisher's loop tried to record the failure against the first pending alert even
when none was pending, raised IndexError, and the delivery task died: every later alert
stayed in the outbox until the next daemon start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nrt.alerts import AlertsConfig, MqttConfig, Publisher
from tests.alerts.conftest import broker_in
from tests.alerts.factory import make_burst
from tests.alerts.subscriber import Collector


def test_idle_publisher_survives_a_long_outage(tmp_path: Path) -> None:
    broker = broker_in(tmp_path / "mq").start()
    collector = Collector("127.0.0.1", broker.port, client_id="idle-outage-sub").start()
    alerts = make_burst(n_ids=2, per_id=1)

    async def scenario() -> None:
        config = AlertsConfig(mqtt=MqttConfig(url=broker.url), retry_max=0.2)
        async with Publisher(config) as publisher:
            await asyncio.wait_for(publisher.mqtt.connected.wait(), 10)
            broker.stop()
            await asyncio.sleep(1.5)  # several failed reopenings with nothing pending
            broker.start()
            for alert in alerts:
                assert await publisher.submit(alert)
            started = time.monotonic()
            await publisher.flush(timeout=20)
            assert publisher.outbox.count_pending() == 0
            assert time.monotonic() - started < 20

    try:
        asyncio.run(scenario())
        collector.wait_for(lambda c: len(c.alerts()) >= len(alerts), settle=0.3)
        assert sorted(m.key for m in collector.alerts()) == sorted(a.key for a in alerts)
    finally:
        collector.stop()
        broker.stop()
