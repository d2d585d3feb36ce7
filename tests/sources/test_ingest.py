"""The ingest record itself: names, and surviving a damaged database."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from nrt import metrics
from nrt.telemetry.formats import read_chunk
from nrt.telemetry.ingest import IngestLog, is_safe_name, is_temp_name, sanitize_name
from nrt.telemetry.ingestthread import THREAD_NAME, AsyncIngestLog
from tests.sources import factory as f


def test_a_damaged_record_is_set_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    path = tmp_path / "ingest.sqlite"
    log = IngestLog(path)
    chunk = read_chunk(f.acs(), f.name("acs"))
    log.record_chunk(chunk, tmp_path / f.name("acs"), "inbox")
    log.close()
    path.write_bytes(b"\0garbage" * 1000)
    repairs = {"database": "ingest", "action": "reset"}
    before = metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs)
    again = IngestLog(path)
    assert metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs) == before + 1
    assert again.records() == [] and not again.has(chunk.sha256)
    assert len(list(tmp_path.glob("ingest.sqlite.damaged-*"))) == 1
    again.record_chunk(chunk, tmp_path / f.name("acs"), "inbox")
    assert again.has(chunk.sha256)
    again.close()


def test_names() -> None:
    assert is_safe_name("acs_025600010010_000001.fits")
    for bad in ("../x.fits", "a/b", "..", ".", "", "a b", "x\n", "é.fits", "a" * 201):
        assert not is_safe_name(bad), bad
    for temp in (".x.fits", "x.fits.tmp", "x.part", "x~"):
        assert is_temp_name(temp)
    assert not is_temp_name("acs_025600010010_000001.fits")
    for raw in ("../../etc/passwd", "a b\nc", "\udcff..x", "...", "a" * 300):
        clean = sanitize_name(raw)
        assert is_safe_name(clean) and "/" not in clean and len(clean) <= 120, clean


#: ~1 WAL page per commit: 3x SQLite's 1000-page automatic checkpoint.
COMMITS = 3000


def _chunks(n: int = COMMITS):
    for i in range(n):
        yield read_chunk(f.hk(t0=1000.0 + 5 * i), f.name("hk", seq=i))


def _wal_pages(path: Path) -> float:
    return Path(f"{path}-wal").stat().st_size / 4120


def test_the_wal_stays_bounded_under_a_steady_stream_of_commits(tmp_path: Path) -> None:
    """The daemon commits a record per chunk, hundreds a second; the WAL must be reset
    by checkpoints, not grow (checkpoints from another thread never caught up: 6.6 GB
    in the 4-day soak)."""
    path = tmp_path / "ingest.sqlite"
    log = IngestLog(path)
    for chunk in _chunks():
        log.record_chunk(chunk, tmp_path / chunk.name, "inbox")
    assert _wal_pages(path) < 1100, "WAL reset at each checkpoint"
    assert len(log.records()) == COMMITS
    log.close()


def test_the_wal_stays_bounded_when_the_daemon_writes_from_the_ingest_thread(
    tmp_path: Path,
) -> None:
    """The same through ``AsyncIngestLog``, as the daemon: every commit, read and
    checkpoint on the log's one thread, the consumer's reads between the commits."""
    path = tmp_path / "ingest.sqlite"

    async def stream() -> tuple[float, int, set[str]]:
        ingest = await AsyncIngestLog.open(path)
        threads = set()
        for chunk in _chunks():
            await ingest.record_chunk(chunk, tmp_path / chunk.name, "inbox")
            assert (await ingest.committed(chunk)).sha256 == chunk.sha256
            if chunk.tstart % 50 == 0:  # a pointing read now and then (the tracker)
                await ingest.records(chunk.pointing)
                threads.add(await ingest.call(lambda: threading.current_thread().name))
        pages, count = _wal_pages(path), len(await ingest.records())
        await ingest.close()
        return pages, count, threads

    pages, count, threads = asyncio.run(stream())
    assert pages < 1100, "WAL reset at each checkpoint"
    assert count == COMMITS
    assert len(threads) == 1 and next(iter(threads)).startswith(THREAD_NAME)
