"""Shared pieces of the daemon tests: the simulated telemetry, notify socket, configuration."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from astropy.time import Time

from nrt.telemetry.formats import tt_time
from nrt.telemetry.simulator import simulate

SEED, HOURS, GRB_RATE = 12, 0.5, 400.0


def unmissable(burst: dict) -> bool:
    """Bursts far above any threshold: >= 12 sigma even when spread over 0.5 s (short) or 20 s."""
    window = 0.5 if burst["class"] == "short" else 20.0
    return burst["acs_counts_expected"] / math.sqrt(1.2 * 9e4 * window) >= 12


def utc_of(tt_seconds: float) -> Time:
    return tt_time(tt_seconds).utc


def simulated(out: Path) -> dict:
    """Write the test telemetry (seed 12, half an hour, bright bursts) into `out`."""
    return simulate(out, HOURS, SEED, grb_rate_per_day=GRB_RATE)


def daemon_config(tmp_path: Path, broker_url: str, metrics_port: int, extra: str = "") -> Path:
    """The daemon's TOML: inbox, state and cache under `tmp_path`; `extra` is appended."""
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
{extra}
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


def start_daemon(config: Path, notify: Path, preexec_fn=None, log: Path | None = None):
    """`nrt run --config` as systemd would start it (NOTIFY_SOCKET, WATCHDOG_USEC).

    `preexec_fn` runs in the child before exec (resource limits, signal dispositions);
    with `log` the output goes to that file (appended) instead of a pipe.
    """
    import os
    import subprocess
    import sys

    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"}
    env.pop("NRT_CACHE_DIR", None)
    env.pop("NRT_STATE_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "nrt.cli", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE if log is None else log.open("a"),
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
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


class Collector:
    """A subscriber that survives broker outages: paho-mqtt, MQTT 5, persistent session, QoS 1.

    It keeps every copy received (duplicates included), re-subscribes on every
    connect (a broker restarted without persistence forgot the subscription),
    and reconnects by itself.
    """

    def __init__(self, port: int, client_id: str = "fault-collector") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.copies: list[tuple[str, dict]] = []
        self.subscriptions = 0  # SUBACKs received: one per (re)connect
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.1, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([("nrt/alerts/+", 1), ("nrt/health/+", 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subscriptions += 1

    def _on_message(self, client, userdata, msg) -> None:
        import json

        with self._lock:
            self.copies.append((msg.topic, json.loads(msg.payload)))

    def alerts(self) -> dict[tuple[str, int], dict]:
        """Alerts by (id, record_number), as a subscriber dropping duplicates sees them."""
        with self._lock:
            return {
                (a["id"], a["record_number"]): a
                for t, a in self.copies
                if t.startswith("nrt/alerts/")
            }

    def health(self) -> list[dict]:
        with self._lock:
            return [h for t, h in self.copies if t.startswith("nrt/health/")]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def feed(files, inbox: Path, pause: float = 0.0) -> None:
    """Rename telemetry files into the inbox, as the ground segment does."""
    import os

    inbox.mkdir(parents=True, exist_ok=True)
    for path in files:
        os.rename(path, inbox / path.name)
        if pause:
            time.sleep(pause)


def pending_alerts_cli(outbox: Path) -> list[str]:
    """``nrt alerts list --pending --json`` over `outbox`, as an operator runs it: its lines."""
    command = [sys.executable, "-m", "nrt.cli", "alerts", "list", "--pending", "--json"]
    done = subprocess.run(
        [*command, "--outbox", str(outbox)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line.strip()]


def chunk_seq(path) -> int:
    """The sequence number in a chunk's file name (``<kind>_<pointing>_<seq>.fits``)."""
    return int(Path(path).stem.rsplit("_", 1)[1])


def copy_telemetry(sim_dir: Path, out: Path) -> list[Path]:
    """A private copy of the module's telemetry (tests move files; the source stays whole)."""
    import shutil

    from nrt.daemon.replay import ordered_files

    out.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, out / p.name)) for p in ordered_files(sim_dir)]


def nrt_cli(*args: str, check: bool = False):
    """Run `python -m nrt.cli ARGS` without the test's NRT_* environment."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "nrt.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        env={k: v for k, v in os.environ.items() if not k.startswith("NRT_")},
    )


def cache_verify(tmp_path: Path):
    """`nrt cache verify` over the daemon's cache and state directories."""
    return nrt_cli(
        "cache",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--state-dir",
        str(tmp_path / "state"),
        "verify",
    )


def cache_checksums(cache: Path) -> dict[str, dict[str, str]]:
    """{signature: {payload file: sha256}} from every manifest of a local cache tier."""
    import json

    found = {}
    for manifest in cache.glob("??/*/manifest.json"):
        m = json.loads(manifest.read_text())
        if m.get("status", "ok") == "ok":
            found[m["signature"]] = {name: f["sha256"] for name, f in m.get("files", {}).items()}
    return found


def product_digests(products: Path) -> dict[str, str]:
    """{pointing/file: sha256 of every HDU's data} for the daemon's FITS products.

    The data, not the file bytes: headers carry the time they were written.
    """
    import hashlib

    import numpy as np
    from astropy.io import fits

    digests = {}
    for path in sorted(products.glob("*/*.fits")):
        h = hashlib.sha256()
        with fits.open(path) as hdus:
            for hdu in hdus:
                if hdu.data is not None:
                    h.update(np.ascontiguousarray(hdu.data).tobytes())
        digests[f"{path.parent.name}/{path.name}"] = h.hexdigest()
    return digests


def daemon_log(daemon) -> str:
    """Everything the daemon printed (waits for it to have exited)."""
    return daemon.communicate()[0] if daemon.stdout is not None else ""


class Running:
    """One `nrt run` process: started, READY awaited; its output appended to `<workdir>/daemon.log`."""

    _count = 0

    def __init__(self, config: Path, workdir: Path, preexec_fn=None, ready: float = 60) -> None:
        Running._count += 1
        self.log_path = workdir / "daemon.log"
        self.notify = Notifications(workdir / f"n{Running._count}.sock")
        self.process = start_daemon(config, self.notify.path, preexec_fn, log=self.log_path)
        try:
            self.notify.wait_for("READY=1", ready)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"daemon not READY in {ready} s:\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a crash or the OOM killer."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.notify.close()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the exit status."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def committed_alerts(tmp_path: Path) -> dict[tuple[str, int], dict]:
    """Every alert revision in the daemon's outbox, with its delivery state per sink."""
    import json

    out = nrt_cli(
        "alerts", "list", "--json", "--outbox", str(tmp_path / "state" / "alerts-outbox.sqlite")
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {(r["alert"]["id"], r["alert"]["record_number"]): r for r in rows}


def through_stream_stage(config: Any, drive: Callable[[Any], Awaitable[None]]) -> list:
    """Run ``await drive(stage)`` on a ``StreamStage`` whose submit keeps each alert once
    by key, as the outbox does; return the alerts committed."""
    import asyncio

    from nrt.daemon.stream import StreamStage

    committed: list = []

    async def submit(alert) -> bool:
        if any(a.key == alert.key for a in committed):
            return False
        committed.append(alert)
        return True

    async def go():
        stage = StreamStage(config, "test", submit)
        try:
            await drive(stage)
        finally:
            stage.close()

    asyncio.run(go())
    return committed
