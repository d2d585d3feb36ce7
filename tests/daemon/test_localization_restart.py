"""A localization asked for before a crash is taken up again after the restart, once.

The real daemon and a real mosquitto. The burst in the imager's field of view is
alerted from the SPI-ACS rates at once; its localization waits for the ISGRI
chunks that cover it. The daemon is SIGKILLed as soon as the subscriber has the
alert:

- *imager data late*: the chunks covering the burst had not arrived; after the
  restart they do, and the update must come (the background before the burst is
  read back from the files handled before the crash);
- *localization under way*: every chunk was there, the localization was running
  (held by the test-only ``NRT_TEST_LOCALIZE_DELAY``); after the restart every
  imager chunk it needs is read back through the ingest log.

Either way the subscriber gets the localization update exactly once (one record
number carries a position, under the alert's one id), and a further restart does
not issue it again (checked in the second variant). Before the fix the pending localization died with the process
(the warm-up finds the alert again, but an alert already issued was never sent
to the imager stage again).
"""

from __future__ import annotations

import os
import time

import pytest
from astropy.coordinates import SkyCoord

from tests.daemon.harness import (
    Collector,
    Running,
    alerts_near,
    chunk_seq,
    committed_alerts,
    copy_telemetry,
    daemon_config,
    feed,
    unmissable,
    wait_until,
)
from tests.support.services import free_port


def _ingested(tmp_path, kind: str) -> bool:
    import sqlite3

    path = tmp_path / "state" / "ingest.sqlite"
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return (
                db.execute("SELECT count(*) FROM chunks WHERE kind = ?", [kind]).fetchone()[0] > 0
            )
    except sqlite3.Error:
        return False


def _burst(truth) -> dict:
    found = [
        b
        for b in truth["grbs"]
        if unmissable(b) and b["in_fov"] and b["isgri_counts_expected"] > 5000
    ]
    assert found, "the simulation must hold a bright burst in the imager's field of view"
    return found[0]


@pytest.mark.parametrize("moment", ["imager data late", "localization under way"])
def test_localization_pending_at_a_crash_is_done_after_the_restart_once(
    tmp_path, telemetry, mosquitto, moment, monkeypatch
):
    sim_dir, truth = telemetry
    burst = _burst(truth)
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    start = truth["pointings"][0]["tstart"]
    burst_seq = int((burst["onset"] - start) // 5) + 1  # 5 s chunks, numbered from 1
    if moment == "imager data late":
        # ACS and housekeeping 30 s past the burst (the alert, its completion); ISGRI
        # only up to the chunk before it.
        first = [
            p
            for p in files
            if chunk_seq(p) <= burst_seq + 6
            and not (p.name.startswith("isgri_") and chunk_seq(p) >= burst_seq)
        ]
    else:
        first = [p for p in files if chunk_seq(p) <= burst_seq + 6]
        monkeypatch.setenv("NRT_TEST_LOCALIZE_DELAY", "30")  # the first life only
    rest = [p for p in files if p not in first]
    port = free_port()
    config = daemon_config(tmp_path, mosquitto.url, port)
    collector = Collector(mosquitto.port, client_id=f"loc-{moment[:5]}")
    inbox = tmp_path / "inbox"
    daemon = Running(config, tmp_path)
    try:
        # The pointing record first, as it comes down first in operations: the attitude
        # must be in the ingest log before the kill (else the restart has nothing to
        # localize with, and the test would measure the feed order, not the resume).
        opening = [p for p in first if p.name.startswith("pointing_")]
        feed(opening, inbox)
        wait_until(lambda: _ingested(tmp_path, "pointing"), 30, "the pointing record ingested")
        feed([p for p in first if p not in opening], inbox)
        initial = wait_until(
            lambda: alerts_near(collector.alerts(), burst["onset"]), 60, "the burst's alert"
        )
        daemon.kill()  # the alert is out; its localization is not
        alert_id = initial[0]["id"]
        located = [a for a in collector.alerts().values() if a.get("ra") is not None]
        assert not located, "the localization came before the kill: the test proves nothing"

        monkeypatch.delenv("NRT_TEST_LOCALIZE_DELAY", raising=False)
        daemon = Running(config, tmp_path)
        feed(rest, inbox)

        def localized():
            return [
                a
                for (i, _n), a in collector.alerts().items()
                if i == alert_id and a.get("ra") is not None
            ]

        updates = wait_until(localized, 60, "the localization update after the restart")
        assert daemon.stop() == 0, daemon.log()[-3000:]
        if moment == "localization under way":  # once more (one variant: ~6 s a start)
            daemon = Running(config, tmp_path)
            time.sleep(3)
            assert daemon.stop() == 0, daemon.log()[-3000:]
    finally:
        daemon.kill()
        time.sleep(0.5)
        collector.close()
    log = daemon.log()
    assert f"localization of alert {alert_id} resumed after a restart" in log
    updates = [a for (i, _n), a in collector.alerts().items() if i == alert_id and "ra" in a]
    assert len(updates) == 1, (
        f"localization updates issued: {[u['record_number'] for u in updates]}"
    )
    committed = [
        r["alert"]
        for (i, _n), r in committed_alerts(tmp_path).items()
        if i == alert_id and r["alert"].get("ra") is not None
    ]
    assert len(committed) == 1, "one localization record in the outbox"
    assert {a["id"] for a in alerts_near(collector.alerts(), burst["onset"])} == {alert_id}
    update = updates[0]
    error = (
        SkyCoord(update["ra"], update["dec"], unit="deg")
        .separation(SkyCoord(burst["ra"], burst["dec"], unit="deg"))
        .deg
    )
    assert error < max(3 * update["ra_dec_error"], 0.25), f"position off by {error:.2f} deg"
    assert os.path.exists(tmp_path / "state" / "localizations.sqlite")
