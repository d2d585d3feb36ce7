"""End to end: the real daemon process, a real mosquitto, simulated chunks renamed into its inbox.

The simulation (seed 12, half an hour, a high burst rate) holds bright short
bursts, one of them inside the imager's field of view. A subscriber must get an
alert for every burst bright enough to be unmissable, a localization update for
the one in the field of view, and the daemon must speak the systemd notify
protocol and stop cleanly on SIGTERM with its outbox empty.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from astropy.time import Time

from nrt.daemon.replay import ordered_files
from nrt.telemetry.simulator import simulate
from tests.support.services import free_port, require_binary

SEED, HOURS, GRB_RATE = 12, 0.5, 400.0


def unmissable(burst: dict) -> bool:
    """Bursts far above any threshold: >= 12 sigma even when spread over 0.5 s (short) or 20 s."""
    window = 0.5 if burst["class"] == "short" else 20.0
    return burst["acs_counts_expected"] / math.sqrt(1.2 * 9e4 * window) >= 12


def utc_of(tt_seconds: float) -> Time:
    return Time(51544.0, tt_seconds / 86400.0, format="mjd", scale="tt").utc


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    truth = simulate(out, HOURS, SEED, grb_rate_per_day=GRB_RATE)
    return out, truth


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


def test_daemon_end_to_end(tmp_path, telemetry, mosquitto):
    sim_dir, truth = telemetry
    inbox, metrics_port = tmp_path / "inbox", free_port()
    config = tmp_path / "nrt.toml"
    config.write_text(
        f"""
[paths]
inbox = "{inbox}"
state = "{tmp_path / "state"}"
cache = "{tmp_path / "cache"}"
[mqtt]
url = "{mosquitto.url}"
client_id = "e2e"
[alerts]
tense = "test"
[quicklook]
grace = "5s"
[metrics]
listen = "127.0.0.1:{metrics_port}"
"""
    )
    received = tmp_path / "received.txt"
    sub = subprocess.Popen(
        [
            require_binary("mosquitto_sub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(mosquitto.port),
            "-v",
            "-t",
            "nrt/alerts/+",
            "-t",
            "nrt/health/+",
            "-t",
            "nrt/status",
        ],
        stdout=received.open("w"),
        stderr=subprocess.STDOUT,
    )
    notify = Notifications(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    env.pop("NRT_CACHE_DIR")
    env.pop("NRT_STATE_DIR")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "nrt.cli", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        notify.wait_for("READY=1", timeout=60)
        for path in ordered_files(sim_dir):
            os.rename(path, inbox / path.name)  # the ground segment renames complete files in
            time.sleep(0.001)
        bright = [b for b in truth["grbs"] if unmissable(b)]
        in_fov = [b for b in bright if b["in_fov"] and b["isgri_counts_expected"] > 5000]
        assert bright and in_fov, "the simulation must hold the bursts this test is about"

        deadline = time.monotonic() + 90
        alerts: dict[tuple[str, int], dict] = {}
        while time.monotonic() < deadline:
            alerts = {}
            for line in received.read_text().splitlines():
                topic, _, payload = line.partition(" ")
                if topic.startswith("nrt/alerts/"):
                    alert = json.loads(payload)
                    alerts[(alert["id"], alert["record_number"])] = alert
            located = [a for a in alerts.values() if a.get("ra") is not None]
            if len({a["id"] for a in alerts.values()}) >= len(bright) and len(located) >= len(
                in_fov
            ):
                break
            time.sleep(0.5)

        initial = [a for a in alerts.values() if a["record_number"] == 1]
        for burst in bright:
            onset = utc_of(burst["onset"])
            near = [a for a in initial if abs((Time(a["trigger_time"]) - onset).sec) < 5]
            assert near, f"no alert within 5 s of the {burst['class']} burst at {onset.isot}"
            assert all(a["alert_tense"] == "test" for a in near)
        for burst in in_fov:
            onset = utc_of(burst["onset"])
            updates = [
                a
                for a in alerts.values()
                if a["record_number"] == 2 and abs((Time(a["trigger_time"]) - onset).sec) < 5
            ]
            assert updates, (
                f"no localization update for the burst in the field of view at {onset.isot}"
            )
            u = updates[0]
            from astropy.coordinates import SkyCoord

            offset = (
                SkyCoord(u["ra"], u["dec"], unit="deg")
                .separation(SkyCoord(burst["ra"], burst["dec"], unit="deg"))
                .deg
            )
            assert offset < max(3 * u["ra_dec_error"], 0.25), (offset, u["ra_dec_error"])

        n_acs = len(list(inbox.glob("acs_*.fits")))
        deadline = time.monotonic() + 60
        while True:  # every chunk renamed in is counted once
            with urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
            ) as r:
                exposition = r.read().decode()
            accepted = [
                float(ln.split()[-1])
                for ln in exposition.splitlines()
                if ln.startswith('nrt_telemetry_files_total{kind="acs",outcome="accepted"}')
            ]
            if accepted == [n_acs] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert accepted == [n_acs]
        assert 'nrt_alerts_total{instrument="SPI-ACS",type="initial"}' in exposition

        deadline = time.monotonic() + 60
        health: list[dict] = []
        while not health and time.monotonic() < deadline:  # the pointing closes: quick-look runs
            health = [
                json.loads(line.partition(" ")[2])
                for line in received.read_text().splitlines()
                if line.startswith("nrt/health/")
            ]
            time.sleep(0.5)
        assert health, "no health summary was published for the pointing"
        assert {h["pointing"] for h in health} == {p["id"] for p in truth["pointings"]}
        assert all(h["checks"] and h["status"] in ("ok", "warning", "alarm") for h in health)

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        notify.wait_for("STOPPING=1", timeout=5)
        assert "WATCHDOG=1" in notify.lines
        pending = subprocess.run(
            [
                sys.executable,
                "-m",
                "nrt.cli",
                "alerts",
                "list",
                "--pending",
                "--json",
                "--outbox",
                str(tmp_path / "state" / "alerts-outbox.sqlite"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert pending.stdout.strip() == "", "the outbox must be empty after a clean stop"
        assert '"state": "offline"' in received.read_text() or "offline" in received.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        output = daemon.communicate()[0]
        sub.terminate()
        sub.wait()
        notify.close()
        print(output[-5000:])
