"""Restart safety: SIGKILL the daemon while telemetry flows, start it again, twice.

After the kills: every bright burst has exactly one alert id (duplicates of a
message are allowed, a second id for the same burst is not), every pointing's
quick-look ran, and the cache verifies clean (no half-written entry).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys

from nrt.daemon.replay import ordered_files
from tests.daemon.harness import (
    Notifications,
    alerts_near,
    daemon_config,
    messages,
    metric,
    start_daemon,
    start_subscriber,
    unmissable,
    wait_until,
)
from tests.support.services import free_port


def test_sigkill_and_restart_lose_nothing_and_repeat_nothing(tmp_path, telemetry, mosquitto):
    sim_dir, truth = telemetry
    files = ordered_files(sim_dir)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = free_port()
    config = daemon_config(tmp_path, mosquitto.url, port)
    received = tmp_path / "received.txt"
    sub = start_subscriber(mosquitto.port, received)
    cuts = [0, int(len(files) * 0.35), int(len(files) * 0.7), len(files)]
    daemon = None
    try:
        for part, (a, b) in enumerate(itertools.pairwise(cuts)):
            notify = Notifications(tmp_path / f"notify{part}.sock")
            daemon = start_daemon(config, notify.path)
            notify.wait_for("READY=1", timeout=60)
            for path in files[a:b]:
                os.rename(path, inbox / path.name)
            acs = sum(1 for p in files[a:b] if p.name.startswith("acs_"))
            if part < 2:
                # Kill while the daemon is busy: once it has taken part of this batch in.
                wait_until(
                    lambda acs=acs: (
                        (
                            metric(port, 'nrt_telemetry_files_total{kind="acs",outcome="accepted"}')
                            or 0
                        )
                        >= acs // 2
                    ),
                    60,
                    "part of the batch handled",
                    step=0.02,
                )
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
            notify.close()

        bright = [b for b in truth["grbs"] if unmissable(b)]

        def done():
            alerts, health, _ = messages(received)
            ok = all(alerts_near(alerts, b["onset"]) for b in bright)
            return ok and {h["pointing"] for h in health} >= {p["id"] for p in truth["pointings"]}

        wait_until(done, 120, "alerts for every bright burst and every pointing's health")
        alerts, _, _ = messages(received)
        for burst in bright:
            ids = {a["id"] for a in alerts_near(alerts, burst["onset"])}
            assert len(ids) == 1, f"burst at {burst['onset']} alerted under several ids: {ids}"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        verify = subprocess.run(
            [
                sys.executable,
                "-m",
                "nrt.cli",
                "cache",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--state-dir",
                str(tmp_path / "state"),
                "verify",
            ],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("NRT_")},
        )
        assert verify.returncode == 0 and "0 corrupt" in verify.stdout, (
            verify.stdout + verify.stderr
        )
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        if daemon is not None:
            print(daemon.communicate()[0][-3000:])
        sub.terminate()
        sub.wait()
