"""Outbox retention: delivered alerts past `[alerts] retain` leave the outbox, undelivered
ones never do, and a pruned alert is never issued again (real SQLite, real mosquitto)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from click.testing import CliRunner

from nrt import metrics
from nrt.alerts import AlertsConfig, MqttConfig, Outbox, Publisher
from nrt.cli import main
from tests.alerts.factory import make_burst
from tests.alerts.subscriber import Collector
from tests.support.mosquitto import Mosquitto

DAY = 86400.0


def age(outbox: Path, alert_id: str, days: float, record_number: int | None = None) -> None:
    """Pretend the revisions of `alert_id` were committed and delivered `days` ago."""
    when = time.time() - days * DAY
    which = "id=? AND (? IS NULL OR record_number=?)"
    with sqlite3.connect(outbox) as con:
        con.execute(
            f"UPDATE alerts SET committed=? WHERE {which}", (when, alert_id, *[record_number] * 2)
        )
        con.execute(
            f"UPDATE deliveries SET updated=? WHERE seq IN (SELECT seq FROM alerts WHERE {which})",
            (when, alert_id, *[record_number] * 2),
        )
    con.close()


def rows(outbox: Path, table: str, column: str = "id") -> list:
    with sqlite3.connect(outbox) as con:
        found = [r[0] for r in con.execute(f"SELECT {column} FROM {table} ORDER BY 1")]
    con.close()
    return found


def test_prune_takes_only_alerts_every_sink_delivered_before_the_cutoff(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path, sinks=("mqtt", "directory"))
    alerts = make_burst(n_ids=5, per_id=2)  # ids a..e, two revisions each
    seqs = {a.key: outbox.add(a) for a in alerts}
    a, b, c, d, e = sorted({x.id for x in alerts})

    def sent(alert_id: str, sinks=("mqtt", "directory")) -> None:
        for sink in sinks:
            outbox.mark_sent(sink, [s for (i, _), s in seqs.items() if i == alert_id])

    sent(a)  # delivered everywhere, old: pruned
    age(path, a, 40)
    sent(b, ("mqtt",))  # the directory sink still owes it: kept
    age(path, b, 40)
    sent(c)  # delivered, but recent: kept
    age(path, c, 29)
    sent(d)  # delivered; its first revision is old, its update recent: kept whole
    age(path, d, 40, record_number=1)
    sent(d, ("mqtt",))
    outbox.record_failure("directory", seqs[(e, 1)], "disk gone", give_up=True)
    outbox.mark_sent("mqtt", [seqs[(e, 1)], seqs[(e, 2)]])
    outbox.mark_sent("directory", [seqs[(e, 2)]])
    age(path, e, 40)  # one revision failed for good: not delivered, kept
    with sqlite3.connect(path) as con:  # c: committed long ago, delivered 29 days ago: kept
        con.execute("UPDATE alerts SET committed=? WHERE id=?", (time.time() - 90 * DAY, c))
    con.close()

    assert outbox.prune(30 * DAY) == 2
    assert a not in rows(path, "alerts")
    assert sorted(set(rows(path, "alerts"))) == [b, c, d, e]
    assert len(rows(path, "deliveries", "seq")) == 2 * 8, "a's delivery rows went with it"
    assert rows(path, "pruned") == [a] and outbox.count_pruned() == 1
    assert rows(path, "pruned", "record_number") == [2]
    assert outbox.count_pending() == 2, "b's directory delivery is still pending"
    assert outbox.prune(30 * DAY) == 0, "nothing more to prune"
    outbox.close()


def test_a_pruned_alert_is_never_committed_again_even_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    first, update = make_burst(n_ids=1, per_id=2)
    outbox.mark_sent("mqtt", [outbox.add(first), outbox.add(update)])
    age(path, first.id, 31)
    assert outbox.prune(30 * DAY) == 2
    outbox.close()

    outbox = Outbox(path)  # a restart
    assert outbox.latest(first.id) is None
    assert outbox.add(first) is None, "the same burst found again is not issued again"
    assert outbox.add(update) is None
    assert outbox.add(update.retracted("seen again")) is None, "nor a later revision of it"
    assert outbox.count_pending() == 0 and rows(path, "alerts") == []
    other = make_burst(n_ids=2, per_id=1)[1]
    assert outbox.add(other) is not None, "other alerts are committed as before"
    outbox.close()


def test_publisher_prunes_and_a_resubmitted_burst_reaches_nobody(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """Through the broker: every revision once; after pruning, the daemon finding the same
    bursts again (warm-up, data sent again) publishes nothing, with or without a restart."""
    alerts = make_burst(n_ids=3, per_id=2)
    outbox = tmp_path / "outbox.sqlite"
    config = AlertsConfig(mqtt=MqttConfig(url=broker.url), outbox=outbox)
    collector = Collector("127.0.0.1", broker.port, client_id="retention-sub").start()

    async def deliver_then_prune() -> None:
        async with Publisher(config) as publisher:
            for alert in alerts:
                assert await publisher.submit(alert)
            await publisher.flush(timeout=10)
            assert await publisher.prune(30 * DAY) == 0, "too recent"
            for alert in alerts[:3]:
                age(outbox, alert.id, 31)
            assert await publisher.prune(30 * DAY) == len(alerts)
            for alert in alerts:
                assert not await publisher.submit(alert)
            assert await publisher.latest(alerts[0].id) is None

    async def restarted() -> None:
        async with Publisher(config) as publisher:
            for alert in alerts:
                assert not await publisher.submit(alert)
            await publisher.flush(timeout=10)

    try:
        asyncio.run(deliver_then_prune())
        asyncio.run(restarted())
        collector.wait_for(lambda c: len(c.alerts()) >= len(alerts), settle=1.0)
    finally:
        collector.stop()
    keys = [m.key for m in collector.alerts()]
    assert sorted(keys) == sorted(a.key for a in alerts), "each revision exactly once"


def test_alerts_list_after_pruning_and_on_an_outbox_from_before_retention(
    isolated_nrt_dirs,
) -> None:
    path = isolated_nrt_dirs["state"] / "alerts-outbox.sqlite"
    outbox = Outbox(path)
    alerts = make_burst(n_ids=2, per_id=1)
    outbox.mark_sent("mqtt", [outbox.add(a) for a in alerts])
    age(path, alerts[0].id, 60)
    assert outbox.prune(30 * DAY) == 1
    outbox.close()

    runner = CliRunner()
    listed = runner.invoke(main, ["alerts", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert alerts[1].id in lines[0] and alerts[0].id not in listed.output
    assert "1 older alerts were delivered and pruned" in listed.output
    machine = runner.invoke(main, ["alerts", "list", "--json"])
    assert machine.exit_code == 0 and machine.stdout.count("\n") == 1

    with sqlite3.connect(path) as con:  # an outbox written before retention existed
        con.execute("DROP TABLE pruned")
    con.close()
    old = runner.invoke(main, ["alerts", "list"])
    assert old.exit_code == 0 and "pruned" not in old.output, old.output
    Outbox(path).close()  # opening it for writing adds the table
    assert rows(path, "pruned") == []


def test_a_repaired_outbox_keeps_the_pruned_ids(tmp_path: Path) -> None:
    from tests.faults.test_corruption import trash_page

    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    gone, kept = make_burst(n_ids=2, per_id=1)
    outbox.mark_sent("mqtt", [outbox.add(gone)])
    outbox.add(kept)
    age(path, gone.id, 40)
    assert outbox.prune(30 * DAY) == 1
    outbox.close()
    trash_page(path, "deliveries_by_state")

    repairs = {"database": "outbox", "action": "salvaged"}
    before = metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs)
    repaired = Outbox(path)
    assert metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs) == before + 1
    assert list(tmp_path.glob("outbox.sqlite.damaged-*")), "repaired, the damaged file aside"
    assert repaired.count_pruned() == 1
    assert repaired.add(gone) is None, "still never issued again"
    assert [row.id for row in repaired.pending("mqtt")] == [kept.id]
    repaired.close()


def test_the_daemon_prunes_at_its_gc_interval(tmp_path: Path, broker: Mosquitto) -> None:
    """`nrt run` with the default `retain` (30d): an alert delivered 31 days ago leaves the
    outbox at the first gc interval, one delivered yesterday stays, a pending one goes out."""
    from tests.daemon.harness import Running, daemon_config, wait_until
    from tests.support.services import free_port

    path = tmp_path / "state" / "alerts-outbox.sqlite"
    outbox = Outbox(path)
    old, recent, pending = make_burst(n_ids=3, per_id=1)
    outbox.mark_sent("mqtt", [outbox.add(old), outbox.add(recent)])
    outbox.add(pending)
    outbox.close()
    age(path, old.id, 31)
    age(path, recent.id, 1)
    age(path, pending.id, 31)
    config = daemon_config(tmp_path, broker.url, free_port(), '[cache]\ngc_interval = "1s"')
    daemon = Running(config, tmp_path)
    try:
        wait_until(lambda: rows(path, "pruned") == [old.id], 30, "the old alert pruned")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    # The recent one stays; so does the pending one: committed 31 days ago, but delivered
    # only now (the age counts from the last delivery too).
    assert sorted(rows(path, "alerts")) == sorted([recent.id, pending.id])
    assert rows(path, "deliveries", "state") == ["sent", "sent"]
    assert "pruned 1 delivered alerts (1 revisions) older than 30 days" in daemon.log()
