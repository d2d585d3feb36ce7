"""The nrt the live Prometheus test scrapes: the daemon replays simulated telemetry in this
process (so the stream triggers, alerts, pointing tracker and quick-look graph all really
run), then this process keeps serving /metrics until SIGTERM.

    python -m tests.grafana.feeder TELEMETRY_DIR CONFIG.toml PORT READY_FILE
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from pathlib import Path

from nrt import config as configuration
from nrt import metrics


def main(telemetry: str, config_path: str, port: str, ready: str) -> int:
    from nrt.daemon import Daemon

    server = metrics.serve(f"127.0.0.1:{port}")
    stop = threading.Event()
    config = configuration.load(config_path)
    status = asyncio.run(Daemon(config, replay=Path(telemetry)).run())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Path(ready).write_text(f"{status}\n")
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
