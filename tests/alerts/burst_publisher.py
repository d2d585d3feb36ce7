"""A publishing process for the kill test: submits a burst, then flushes.

Run as ``python -m tests.alerts.burst_publisher BROKER_URL OUTBOX N_IDS PER_ID``.
Prints ``submitted <i>`` after each commit and ``done`` once every alert is
acknowledged, so the test can SIGKILL it at chosen points. Resubmitting after a
restart is what the daemon does too (it rediscovers its triggers): committed
revisions are no-ops, the rest are committed now.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from nrt.alerts import AlertsConfig, MqttConfig, Publisher
from tests.alerts.factory import make_burst


async def main(url: str, outbox: Path, n_ids: int, per_id: int) -> None:
    config = AlertsConfig(mqtt=MqttConfig(url=url), outbox=outbox, retry_max=0.5)
    async with Publisher(config) as publisher:
        for i, alert in enumerate(make_burst(n_ids, per_id), start=1):
            await publisher.submit(alert)
            print(f"submitted {i}", flush=True)
            await asyncio.sleep(0.001)  # a burst, not one transaction: let delivery run
        await publisher.flush(timeout=60)
        print("done", flush=True)


if __name__ == "__main__":
    url, outbox, n_ids, per_id = sys.argv[1:5]
    asyncio.run(main(url, Path(outbox), int(n_ids), int(per_id)))
