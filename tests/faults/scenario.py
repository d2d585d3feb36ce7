"""Pieces the fault tests share: running the daemon to completion, and what "complete" means."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.daemon.harness import (
    Running,
    alerts_near,
    cache_checksums,
    committed_alerts,
    copy_telemetry,
    daemon_config,
    feed,
    product_digests,
    unmissable,
    wait_until,
)
from tests.support.services import free_port

#: Product files the quick-look writes per pointing (at least); see tests/daemon/test_e2e.py.
MIN_PRODUCTS = 4


@dataclass
class Outcome:
    """What a run left behind, to compare a faulty run with an uninterrupted one."""

    products: dict[str, str]
    cache: dict[str, dict[str, str]]
    alerts: set[tuple[str, int]]
    seconds: float = 0.0  # from READY to complete


def outcome(tmp_path: Path) -> Outcome:
    return Outcome(
        product_digests(tmp_path / "state" / "products"),
        cache_checksums(tmp_path / "cache"),
        set(committed_alerts(tmp_path)),
    )


def committed_now(tmp_path: Path) -> dict[tuple[str, int], dict]:
    """The records `committed_alerts` returns (``nrt alerts list --json``), read in this
    process through a read-only connection, for the wait loops: they poll several times
    a second, and a CLI process per poll takes about 2 s on a loaded machine (and the
    CPU the daemon under test needs). Final checks still go through the CLI."""
    import json

    from nrt.alerts.model import AlertFormatError
    from nrt.alerts.outbox import Outbox

    path = tmp_path / "state" / "alerts-outbox.sqlite"
    if not path.exists():
        return {}
    try:
        store = Outbox(path, readonly=True)
    except AlertFormatError:  # the daemon is creating it
        return {}
    try:
        return {
            (row.id, row.record_number): {
                "delivery": {
                    sink: {"state": state, "attempts": attempts, "error": error}
                    for sink, (state, attempts, error) in deliveries.items()
                },
                "alert": json.loads(row.json),
            }
            for row, deliveries in store.history()
        }
    finally:
        store.close()


def complete(tmp_path: Path, truth: dict, products: int | None = None) -> bool:
    """Every bright burst alerted and delivered, every pointing's products written."""
    committed = committed_now(tmp_path)
    alerts = {k: r["alert"] for k, r in committed.items()}
    if not all(alerts_near(alerts, b["onset"]) for b in truth["grbs"] if unmissable(b)):
        return False
    if any(d["state"] != "sent" for r in committed.values() for d in r["delivery"].values()):
        return False
    written = product_digests(tmp_path / "state" / "products")
    want = products if products is not None else MIN_PRODUCTS * len(truth["pointings"])
    return len(written) >= want


def run_through(tmp_path: Path, telemetry, broker_url: str, extra: str = "") -> Outcome:
    """An uninterrupted run: all telemetry into the inbox, wait for completion, SIGTERM."""
    sim_dir, truth = telemetry
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    config = daemon_config(tmp_path, broker_url, free_port(), extra)
    feed(files, tmp_path / "inbox")  # a backlog, as the SIGKILL test restarts into
    daemon = Running(config, tmp_path)
    started = time.monotonic()
    try:
        wait_until(lambda: complete(tmp_path, truth), 120, "an uninterrupted run to complete")
        seconds = time.monotonic() - started
        assert daemon.stop() == 0, daemon.log()[-3000:]
    finally:
        daemon.kill()
    result = outcome(tmp_path)
    result.seconds = seconds
    return result
