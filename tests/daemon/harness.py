"""Shared pieces of the daemon tests: the simulated telemetry, notify socket, configuration."""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path

from astropy.time import Time

from nrt.telemetry.simulator import simulate

SEED, HOURS, GRB_RATE = 12, 0.5, 400.0


def unmissable(burst: dict) -> bool:
    """Bursts far above any threshold: >= 12 sigma even when spread over 0.5 s (short) or 20 s."""
    window = 0.5 if burst["class"] == "short" else 20.0
    return burst["acs_counts_expected"] / math.sqrt(1.2 * 9e4 * window) >= 12


def utc_of(tt_seconds: float) -> Time:
    return Time(51544.0, tt_seconds / 86400.0, format="mjd", scale="tt").utc


def simulated(out: Path) -> dict:
    """Write the test telemetry (seed 12, half an hour, bright bursts) into `out`."""
    return simulate(out, HOURS, SEED, grb_rate_per_day=GRB_RATE)


def daemon_config(tmp_path: Path, broker_url: str, metrics_port: int) -> Path:
    config = tmp_path / "nrt.toml"
    config.write_text(
        f"""
[paths]
inbox = "{tmp_path / "inbox"}"
state = "{tmp_path / "state"}"
cache = "{tmp_path / "cache"}"
[mqtt]
url = "{broker_url}"
client_id = "e2e"
[alerts]
tense = "test"
[quicklook]
grace = "5s"
[metrics]
listen = "127.0.0.1:{metrics_port}"
"""
    )
    return config


class Notifications:
    """The systemd side of sd_notify: a datagram socket read continuously, as systemd does."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines += self.sock.recv(4096).decode().splitlines()
            except TimeoutError:
                continue

    def wait_for(self, line: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {line} from the daemon; got {self.lines}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def start_subscriber(port: int, out: Path):
    """mosquitto_sub writing `topic payload` lines for alerts (JSON), health and status."""
    import subprocess

    from tests.support.services import require_binary

    return subprocess.Popen(
        [
            require_binary("mosquitto_sub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-v",
            "-t",
            "nrt/alerts/+",
            "-t",
            "nrt/health/+",
            "-t",
            "nrt/status",
        ],
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
    )


def messages(out: Path) -> tuple[dict[tuple[str, int], dict], list[dict], list[str]]:
    """(alerts by (id, record_number), health summaries, status payloads) received so far."""
    import json

    alerts, health, status = {}, [], []
    for line in out.read_text().splitlines():
        topic, _, payload = line.partition(" ")
        if topic.startswith("nrt/alerts/"):
            alert = json.loads(payload)
            alerts[(alert["id"], alert["record_number"])] = alert
        elif topic.startswith("nrt/health/"):
            health.append(json.loads(payload))
        elif topic == "nrt/status":
            status.append(payload)
    return alerts, health, status


def start_daemon(config: Path, notify: Path):
    """`nrt run --config` as systemd would start it (NOTIFY_SOCKET, WATCHDOG_USEC)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"}
    env.pop("NRT_CACHE_DIR", None)
    env.pop("NRT_STATE_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "nrt.cli", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def metric(port: int, prefix: str) -> float | None:
    """The value of the first exposition line starting with `prefix`, or None."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
    return None


def wait_until(predicate, timeout: float, what: str, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def alerts_near(
    alerts: dict, onset_tt: float, record_number: int = 1, within: float = 5.0
) -> list[dict]:
    onset = utc_of(onset_tt)
    return [
        a
        for a in alerts.values()
        if a["record_number"] == record_number
        and abs((Time(a["trigger_time"]) - onset).sec) < within
    ]
