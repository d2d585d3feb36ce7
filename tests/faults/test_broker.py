"""The broker goes away while alerts are being raised: every alert still arrives, once per id.

Four ways, two per run: mosquitto stopped for ``NRT_FAULT_OUTAGE`` seconds (3 in `make test`,
60 in `make faults`); mosquitto killed and restarted with its persistence wiped
(it forgets every session and retained message); the network cut by a TCP proxy
between the daemon and the broker, once with connection resets and once as a
black hole (bytes silently dropped, so only the publish timeout notices).

Pass condition, for each: every revision committed to the outbox reaches a
subscriber, the outbox ends empty, and each bright burst has exactly one alert id
(copies of a message are allowed: subscribers drop them by id and record_number).
"""

from __future__ import annotations

import shutil
import subprocess
import time

from tests.daemon.harness import (
    Collector,
    Running,
    alerts_near,
    chunk_seq,
    committed_alerts,
    copy_telemetry,
    daemon_config,
    feed,
    metric,
    unmissable,
    wait_until,
)
from tests.faults.scenario import committed_now
from tests.support.services import free_port, require_binary
from tests.support.tcpproxy import TcpProxy


def _phases(files, truth) -> list[list]:
    """Three slices of the feed: no burst; the first bright burst; the other bright bursts."""
    start = truth["pointings"][0]["tstart"]
    seqs = sorted(int((b["onset"] - start) // 5) + 1 for b in truth["grbs"] if unmissable(b))
    first, mid = seqs[0] - 5, (seqs[0] + seqs[1]) // 2
    return [
        [p for p in files if chunk_seq(p) < first],
        [p for p in files if first <= chunk_seq(p) < mid],
        [p for p in files if chunk_seq(p) >= mid],
    ]


def _check_delivery(tmp_path, collector: Collector, truth, timeout: float, until=None) -> dict:
    """Wait until the subscriber holds every committed revision; check one id per burst
    (the bright bursts before data time `until`)."""
    bright = [b for b in truth["grbs"] if unmissable(b) and (until is None or b["onset"] < until)]

    def delivered():
        got = collector.alerts()
        if not all(alerts_near(got, b["onset"]) for b in bright):
            return None
        committed = committed_now(tmp_path)
        return got if committed and set(committed) <= set(got) else None

    try:
        got = wait_until(delivered, timeout, "every committed alert at the subscriber", step=0.5)
    except AssertionError as exc:
        missing = set(committed_alerts(tmp_path)) - set(collector.alerts())
        got = sorted(collector.alerts())
        raise AssertionError(f"{exc}: missing {sorted(missing)}; got {got}") from None
    committed = committed_alerts(tmp_path)
    assert set(got) == set(committed), "the subscriber got revisions the outbox never committed"
    for burst in bright:
        ids = {a["id"] for a in alerts_near(got, burst["onset"])}
        assert len(ids) == 1, f"burst at {burst['onset']} under several ids: {ids}"
    wait_until(
        lambda: all(
            d["state"] == "sent"
            for r in committed_now(tmp_path).values()
            for d in r["delivery"].values()
        ),
        30,
        "the outbox to mark everything sent",
    )
    return got


def _outage_run(tmp_path, telemetry, broker, broker_url, faults, outage, on_collector=None):
    """Two faults in one run: each `(break, mend)` pair is applied while one slice of the
    feed, holding bright bursts, goes in; the link is mended after `outage` seconds."""
    sim_dir, truth = telemetry
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    port = free_port()
    config = daemon_config(tmp_path, broker_url, port)
    collector = Collector(broker.port, client_id=f"collector-{port}")
    if on_collector is not None:
        on_collector(collector)
    daemon = Running(config, tmp_path)
    start = truth["pointings"][0]["tstart"]
    try:
        quiet, *slices = _phases(files, truth)
        feed(quiet, tmp_path / "inbox")
        for (break_link, mend_link), part in zip(faults, slices, strict=True):
            before = len(committed_now(tmp_path))
            break_link()
            broken = time.monotonic()
            feed(part, tmp_path / "inbox")
            # Alerts are raised while the link is down: they wait in the outbox.
            wait_until(
                lambda before=before: (
                    len(committed_now(tmp_path)) > before
                    and (metric(port, 'nrt_outbox_pending{sink="mqtt"}') or 0) > 0
                ),
                max(outage, 5) + 30,
                "alerts pending in the outbox during the outage",
            )
            time.sleep(max(0.0, outage - (time.monotonic() - broken)))
            mend_link()
            until = start + 5 * chunk_seq(part[-1])
            got = _check_delivery(tmp_path, collector, truth, timeout=90, until=until)
        assert daemon.stop() == 0
        return got, daemon.log()
    finally:
        daemon.kill()
        collector.close()


def test_broker_stopped_then_restarted_wiped(tmp_path, telemetry, mosquitto, fault):
    """First mosquitto stops (its persistence kept) while the first burst is alerted; then
    it crashes and comes back empty (no sessions, no retained messages) during the next.

    The daemon reaches it through a proxy that, after the wipe, opens only once the
    subscriber has subscribed again (else messages sent in between have nobody to go
    to: MQTT's rule, not the daemon's fault).
    """
    import signal

    proxy = TcpProxy(mosquitto.port).start()
    collectors = []

    def crash_and_wipe():
        proxy.cut("reset")
        mosquitto.stop(signal.SIGKILL)
        shutil.rmtree(mosquitto.workdir / "data")

    def come_back_empty():
        subscribed = collectors[0].subscriptions
        mosquitto.start()
        wait_until(lambda: collectors[0].subscriptions > subscribed, 30, "the subscriber back")
        proxy.restore()

    try:
        got, _log = _outage_run(
            tmp_path,
            telemetry,
            mosquitto,
            f"mqtt://127.0.0.1:{proxy.port}",
            [(mosquitto.stop, mosquitto.start), (crash_and_wipe, come_back_empty)],
            fault.outage,
            on_collector=collectors.append,
        )
    finally:
        proxy.stop()
    assert any(a.get("ra") is not None for a in got.values()), "the localization update too"
    # The broker forgot the retained status; the daemon set it again on reconnect, and
    # its last word on stopping is there.
    status = subprocess.run(
        [
            require_binary("mosquitto_sub"),
            "-p",
            str(mosquitto.port),
            "-t",
            "nrt/status",
            "-C",
            "1",
            "-W",
            "5",
        ],
        capture_output=True,
        text=True,
    )
    assert '"offline"' in status.stdout, status


def test_network_cut_reset_then_blackhole(tmp_path, telemetry, mosquitto, fault):
    """A TCP proxy between daemon and broker: first connections reset (and refused while
    cut), then a black hole (bytes dropped, connections left open)."""
    proxy = TcpProxy(mosquitto.port).start()
    try:
        _outage_run(
            tmp_path,
            telemetry,
            mosquitto,
            f"mqtt://127.0.0.1:{proxy.port}",
            [
                (lambda: proxy.cut("reset"), proxy.restore),
                (lambda: proxy.cut("blackhole"), proxy.restore),
            ],
            fault.outage,
        )
        assert proxy.connections >= 3, "the daemon must have reconnected after each cut"
    finally:
        proxy.stop()
