"""The broker goes away while alerts are being raised: every alert still arrives, once per id.

Three ways: mosquitto stopped for ``NRT_FAULT_OUTAGE`` seconds (3 in `make test`,
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

import pytest

from tests.daemon.harness import (
    Collector,
    Running,
    alerts_near,
    committed_alerts,
    copy_telemetry,
    daemon_config,
    feed,
    metric,
    unmissable,
    wait_until,
)
from tests.support.services import free_port, require_binary
from tests.support.tcpproxy import TcpProxy


def _first_burst_split(files, truth) -> int:
    """Index of the first file after the first bright burst (plus a minute of margin)."""
    first = min(b["onset"] for b in truth["grbs"] if unmissable(b)) + 60
    start = truth["pointings"][0]["tstart"]
    seq = int((first - start) // 5) + 2
    return next(i for i, p in enumerate(files) if int(p.stem.rsplit("_", 1)[1]) > seq)


def _check_delivery(tmp_path, collector: Collector, truth, timeout: float) -> dict:
    """Wait until the subscriber holds every committed revision; check one id per burst."""
    bright = [b for b in truth["grbs"] if unmissable(b)]

    def delivered():
        got = collector.alerts()
        if not all(alerts_near(got, b["onset"]) for b in bright):
            return None
        committed = committed_alerts(tmp_path)
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
            for r in committed_alerts(tmp_path).values()
            for d in r["delivery"].values()
        ),
        30,
        "the outbox to mark everything sent",
    )
    return got


def _outage_run(
    tmp_path, telemetry, broker, broker_url, break_link, mend_link, outage, on_collector=None
):
    """Feed up to after the first burst; break the link; feed the rest; mend it after `outage`."""
    sim_dir, truth = telemetry
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    port = free_port()
    config = daemon_config(tmp_path, broker_url, port)
    collector = Collector(broker.port, client_id=f"collector-{port}")
    if on_collector is not None:
        on_collector(collector)
    daemon = Running(config, tmp_path)
    try:
        split = _first_burst_split(files, truth)
        feed(files[:split], tmp_path / "inbox")
        wait_until(lambda: len(collector.alerts()) >= 1, 60, "the first alert before the fault")
        break_link()
        broken = time.monotonic()
        feed(files[split:], tmp_path / "inbox")
        # Alerts are raised while the link is down: they wait in the outbox.
        wait_until(
            lambda: (metric(port, 'nrt_outbox_pending{sink="mqtt"}') or 0) > 0,
            max(outage, 5) + 30,
            "alerts pending in the outbox during the outage",
        )
        time.sleep(max(0.0, outage - (time.monotonic() - broken)))
        mend_link()
        got = _check_delivery(tmp_path, collector, truth, timeout=90)
        assert daemon.stop() == 0
        return got, daemon.log()
    finally:
        daemon.kill()
        collector.close()


def test_broker_stopped_during_alerts(tmp_path, telemetry, mosquitto, fault):
    got, _log = _outage_run(
        tmp_path, telemetry, mosquitto, mosquitto.url, mosquitto.stop, mosquitto.start, fault.outage
    )
    assert any(a.get("ra") is not None for a in got.values()), "the localization update too"


def test_broker_restarted_with_persistence_wiped(tmp_path, telemetry, mosquitto, fault):
    """The broker crashes and comes back empty: no sessions, no retained messages.

    The daemon reaches it through a proxy that opens only once the subscriber has
    subscribed again (else messages sent in between have nobody to go to: MQTT's
    rule, not the daemon's fault).
    """
    import signal

    proxy = TcpProxy(mosquitto.port).start()
    collector_ready = []

    def crash_and_wipe():
        proxy.cut("reset")
        mosquitto.stop(signal.SIGKILL)
        shutil.rmtree(mosquitto.workdir / "data")

    def come_back():
        mosquitto.start()
        wait_until(lambda: collector_ready[0].subscriptions >= 2, 30, "the subscriber back")
        proxy.restore()

    try:
        _outage_run(
            tmp_path,
            telemetry,
            mosquitto,
            f"mqtt://127.0.0.1:{proxy.port}",
            crash_and_wipe,
            come_back,
            fault.outage,
            on_collector=collector_ready.append,
        )
    finally:
        proxy.stop()
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


@pytest.mark.parametrize("how", ["reset", "blackhole"])
def test_network_cut_between_daemon_and_broker(tmp_path, telemetry, mosquitto, fault, how):
    proxy = TcpProxy(mosquitto.port).start()
    try:
        _got, _log = _outage_run(
            tmp_path,
            telemetry,
            mosquitto,
            f"mqtt://127.0.0.1:{proxy.port}",
            lambda: proxy.cut(how),
            proxy.restore,
            fault.outage,
        )
        assert proxy.connections >= 2, "the daemon must have reconnected through the proxy"
    finally:
        proxy.stop()
