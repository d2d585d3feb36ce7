"""The ingest log keeps a window of data, not the whole mission (found by the soak)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrt.telemetry.formats import chunk_bytes, read_chunk
from nrt.telemetry.ingest import IngestLog

DAY = 86400.0


def acs_chunk(pointing: str, t0: float):
    times = t0 + np.arange(100) * 0.05
    data = chunk_bytes("acs", pointing, {"TIME": times, "COUNTS": np.full(100, 4500)}, t0, t0 + 5)
    return read_chunk(data, name=f"acs_{pointing}_000001.fits")


def test_prune_forgets_announced_pointings_older_than_the_window(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "ingest.sqlite")
    old, recent, unannounced = "000100010010", "000100020010", "000100030010"
    chunks = {
        old: acs_chunk(old, 1e8),
        unannounced: acs_chunk(unannounced, 1e8 + 100),
        recent: acs_chunk(recent, 1e8 + 3 * DAY),
    }
    for chunk in chunks.values():
        log.record_chunk(chunk, tmp_path / chunk.name, "inbox")
    log.announce(old, "d1", "covered")
    log.announce(recent, "d2", "covered")

    assert log.prune(2 * DAY) == 1
    assert {r.pointing for r in log.records()} == {recent, unannounced}
    assert not log.has(chunks[old].sha256), "forgotten content is handled again if re-sent"
    assert log.has(chunks[unannounced].sha256), "a pointing never announced is kept"
    assert set(log.announced()) == {recent}
    assert log.prune(2 * DAY) == 0
    assert log.prune(10 * DAY) == 0  # the newest data are never older than the window
    log.close()
