"""End to end: the real daemon process, a real mosquitto, simulated chunks renamed into its inbox.

The simulation (seed 12, half an hour, a high burst rate) holds bright short
bursts, one of them inside the imager's field of view. A subscriber must get an
alert for every burst bright enough to be unmissable, a localization update for
the one in the field of view, health summaries per pointing; the daemon must
speak the systemd notify protocol and stop cleanly on SIGTERM with its outbox empty.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from astropy.coordinates import SkyCoord

from nrt.daemon.replay import ordered_files
from tests.daemon.harness import (
    Notifications,
    alerts_near,
    daemon_config,
    messages,
    metric,
    pending_alerts_cli,
    start_daemon,
    start_subscriber,
    unmissable,
    wait_until,
)
from tests.support.services import free_port


def test_daemon_end_to_end(tmp_path, telemetry, mosquitto):
    sim_dir, truth = telemetry
    bright = [b for b in truth["grbs"] if unmissable(b)]
    in_fov = [b for b in bright if b["in_fov"] and b["isgri_counts_expected"] > 5000]
    assert bright and in_fov, "the simulation must hold the bursts this test is about"
    port = free_port()
    config = daemon_config(tmp_path, mosquitto.url, port)
    received = tmp_path / "received.txt"
    sub = start_subscriber(mosquitto.port, received)
    notify = Notifications(tmp_path / "notify.sock")
    daemon = start_daemon(config, notify.path)
    inbox = tmp_path / "inbox"
    try:
        notify.wait_for("READY=1", timeout=60)
        for path in ordered_files(sim_dir):
            os.rename(path, inbox / path.name)  # the ground segment renames complete files in
            time.sleep(0.001)

        def complete():
            alerts, health, _ = messages(received)
            located = [a for a in alerts.values() if a.get("ra") is not None]
            ids = {a["id"] for a in alerts.values()}
            return (
                alerts
                if len(ids) >= len(bright) and len(located) >= len(in_fov) and health
                else None
            )

        with contextlib.suppress(AssertionError):  # the assertions below say what is missing
            wait_until(complete, 90, "alerts, localizations and health summaries")
        alerts, health, _ = messages(received)
        for burst in bright:
            near = alerts_near(alerts, burst["onset"])
            assert near, f"no alert within 5 s of the {burst['class']} burst at {burst['onset']}"
            assert all(a["alert_tense"] == "test" for a in near)
            # Prompt mode: the initial alert is the excess's first window (preliminary);
            # the complete trigger refines it in an update, never retracts a real burst.
            revisions = [a for a in alerts.values() if a["id"] == near[0]["id"]]
            assert "preliminary" in near[0].get("flags", []), near[0]
            assert not [a for a in revisions if a["alert_type"] == "retraction"]
            assert any(
                a["alert_type"] == "update" and "preliminary" not in a.get("flags", [])
                for a in revisions
            ), revisions
        for burst in in_fov:
            initial = alerts_near(alerts, burst["onset"])[0]
            revisions = [a for a in alerts.values() if a["id"] == initial["id"]]
            updates = [a for a in revisions if a.get("ra") is not None]
            assert updates, "no localization update for the burst in the field of view"
            u = updates[0]
            assert u["alert_type"] == "update" and u["record_number"] >= 2
            offset = (
                SkyCoord(u["ra"], u["dec"], unit="deg")
                .separation(SkyCoord(burst["ra"], burst["dec"], unit="deg"))
                .deg
            )
            assert offset < max(3 * u["ra_dec_error"], 0.25), (offset, u["ra_dec_error"])
        assert {h["pointing"] for h in health} == {p["id"] for p in truth["pointings"]}
        from astropy.io import fits

        for pointing in truth["pointings"]:  # FITS products per pointing, readable by astropy
            written = sorted((tmp_path / "state" / "products" / pointing["id"]).glob("*.fits"))
            assert len(written) >= 4, written
            for path in written:
                with fits.open(path) as hdus:
                    assert hdus[0].header.get("POINTING", pointing["id"]) == pointing["id"]
        assert all(h["checks"] and h["status"] in ("ok", "warning", "alarm") for h in health)

        n_acs = len(list(inbox.glob("acs_*.fits")))
        wait_until(
            lambda: (
                metric(port, 'nrt_telemetry_files_total{kind="acs",outcome="accepted"}') == n_acs
            ),
            60,
            "every chunk counted once",
        )
        assert metric(port, 'nrt_alerts_total{instrument="SPI-ACS",type="initial"}') >= len(bright)

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        notify.wait_for("STOPPING=1", timeout=5)
        assert "WATCHDOG=1" in notify.lines
        pending = pending_alerts_cli(tmp_path / "state" / "alerts-outbox.sqlite")
        assert pending == [], "the outbox must be empty after a clean stop"
        wait_until(lambda: any("offline" in s for s in messages(received)[2]), 10, "status offline")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        print(daemon.communicate()[0][-5000:])
        sub.terminate()
        sub.wait()
        notify.close()
