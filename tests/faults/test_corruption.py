"""Bytes flipped in the cache payloads, the cache index and the alerts outbox.

Each must be detected, counted, logged with a clear line, and repaired or set
aside; nothing the daemon owes (an alert, a product) may be lost to it:

- cache payloads (every payload of every entry of an uninterrupted run's cache):
  found when read back (sha256 against the manifest), counted in
  ``nrt_cache_requests_total{result="corrupt"}``, removed and computed again,
  and the products come out identical;
- the cache index (a b-tree page trashed): set aside and rebuilt from the
  manifests at start, counted in ``nrt_state_repairs_total{database="index"}``;
- the outbox: with only an index page damaged every row still reads, so it is
  copied into a fresh outbox (the damaged file kept beside it; counted in
  ``nrt_state_repairs_total{database="outbox"}``) and an undelivered alert in it is
  still delivered; with the alerts table itself
  unreadable the daemon refuses to start and says how to recover the file.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.daemon.harness import (
    Collector,
    Running,
    cache_checksums,
    cache_verify,
    copy_telemetry,
    daemon_config,
    feed,
    metric,
    nrt_cli,
    wait_until,
)
from tests.faults.scenario import complete, outcome
from tests.support.services import free_port


def flip(path: Path, offset: int, n: int = 8) -> None:
    """Invert `n` bytes of `path` at `offset` (in place, as a failing disk would)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def trash_page(db: Path, name: str) -> None:
    """Overwrite the header of the root b-tree page of table or index `name`."""
    con = sqlite3.connect(db)
    try:
        (page_size,) = con.execute("PRAGMA page_size").fetchone()
        (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (name,)).fetchone()
    finally:
        con.close()
    flip(db, (root - 1) * page_size, 12)


def test_cache_payloads_and_index_corrupted(tmp_path, telemetry, reference, mosquitto):
    sim_dir, truth = telemetry
    ref_dir, expected = reference
    shutil.copytree(ref_dir / "cache", tmp_path / "cache")
    (tmp_path / "state").mkdir()
    shutil.copy(ref_dir / "state" / "index.db", tmp_path / "state" / "index.db")
    payloads = [p for p in (tmp_path / "cache").glob("??/*/*") if p.name != "manifest.json"]
    assert len(payloads) >= 5
    for payload in payloads:
        flip(payload, payload.stat().st_size // 2)
    trash_page(tmp_path / "state" / "index.db", "products")

    port = free_port()
    config = daemon_config(tmp_path, mosquitto.url, port)
    # A backlog, as the reference run had: fed to a running daemon, the pointing can be
    # handed on before its last files arrive, and that partial quick-look (new signatures)
    # reads none of the corrupted entries.
    feed(copy_telemetry(sim_dir, tmp_path / "sim"), tmp_path / "inbox")
    daemon = Running(config, tmp_path)
    try:
        wait_until(lambda: complete(tmp_path, truth), 90, "the run over a corrupted cache")
        corrupt = metric(port, 'nrt_cache_requests_total{result="corrupt",tier="local"}') or 0
        rebuilt = metric(port, 'nrt_state_repairs_total{action="rebuilt",database="index"}')
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    log = daemon.log()
    assert corrupt >= 1, "corrupt payloads must be counted"
    assert rebuilt == 1, "the damaged index must be counted, once"
    assert "corrupt cache entry in tier local" in log and "will recompute" in log
    assert "cache index" in log and "is damaged" in log and "rebuilding from manifests" in log
    assert list((tmp_path / "state").glob("index.db.corrupt-*")), "the damaged index is kept aside"
    got = outcome(tmp_path)
    assert got.products == expected.products, "products after recomputation differ"
    # Entries the run read were recomputed; `verify` removes whatever it did not need.
    first = cache_verify(tmp_path)
    assert first.returncode in (0, 1), first.stderr
    second = cache_verify(tmp_path)
    assert second.returncode == 0 and "0 corrupt" in second.stdout, second.stdout
    for signature, files in cache_checksums(tmp_path / "cache").items():
        assert files == expected.cache[signature], f"{signature[:12]} differs from the reference"
    listed = nrt_cli(
        "cache",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--state-dir",
        str(tmp_path / "state"),
        "ls",
        "--json",
    )
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(
        cache_checksums(tmp_path / "cache")
    ), "the rebuilt index lists every entry"


def _outbox_with_one_pending(ref_dir: Path, tmp_path: Path) -> tuple[Path, tuple[str, int]]:
    state = tmp_path / "state"
    state.mkdir()
    outbox = state / "alerts-outbox.sqlite"
    shutil.copy(ref_dir / "state" / "alerts-outbox.sqlite", outbox)
    con = sqlite3.connect(outbox)
    with con:
        seq, alert_id, number = con.execute(
            "SELECT seq, id, record_number FROM alerts ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        con.execute("UPDATE deliveries SET state='pending' WHERE seq=?", (seq,))
    con.close()
    return outbox, (alert_id, number)


def test_outbox_index_damaged_is_repaired_without_losing_alerts(tmp_path, reference, mosquitto):
    ref_dir, expected = reference
    outbox, pending = _outbox_with_one_pending(ref_dir, tmp_path)
    trash_page(outbox, "deliveries_by_state")
    collector = Collector(mosquitto.port, client_id="outbox-collector")
    port = free_port()
    daemon = Running(daemon_config(tmp_path, mosquitto.url, port), tmp_path)
    try:
        wait_until(lambda: pending in collector.alerts(), 30, "the pending alert delivered")
        salvaged = metric(port, 'nrt_state_repairs_total{action="salvaged",database="outbox"}')
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        collector.close()
    log = daemon.log()
    assert salvaged == 1, "the repaired outbox must be counted, once"
    assert "alert outbox" in log and "was damaged" in log and "copied into a fresh outbox" in log
    assert list(outbox.parent.glob("alerts-outbox.sqlite.damaged-*")), "the damaged file is kept"
    con = sqlite3.connect(outbox)
    assert con.execute("PRAGMA quick_check").fetchone() == ("ok",)
    rows = {tuple(r) for r in con.execute("SELECT id, record_number FROM alerts")}
    assert rows == expected.alerts, "every revision was copied into the fresh outbox"
    con.close()


def test_outbox_unreadable_refuses_to_start_and_says_how_to_recover(tmp_path, reference, mosquitto):
    import os
    import subprocess
    import sys

    ref_dir, _ = reference
    outbox, _pending = _outbox_with_one_pending(ref_dir, tmp_path)
    trash_page(outbox, "alerts")
    before = outbox.read_bytes()
    config = daemon_config(tmp_path, mosquitto.url, free_port())
    run = subprocess.run(
        [sys.executable, "-m", "nrt.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("NRT_")},
    )
    assert run.returncode != 0
    assert f"alert outbox {outbox} is damaged" in run.stderr, run.stderr[-2000:]
    assert ".recover" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert outbox.read_bytes() == before, "the damaged outbox is left exactly as it was"
