"""The ingest record itself: names, and surviving a damaged database."""

from __future__ import annotations

from pathlib import Path

from nrt import metrics
from nrt.telemetry.formats import read_chunk
from nrt.telemetry.ingest import IngestLog, is_safe_name, is_temp_name, sanitize_name
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


def test_background_checkpoints_keep_disk_syncs_off_the_writer(tmp_path: Path) -> None:
    """The daemon's loop commits a chunk record at a time; with background checkpoints
    those commits never copy the WAL into the database (the step that syncs the disk):
    another thread does, and the WAL is then reused from its start."""
    chunks = [read_chunk(f.acs(t0=1000.0 + 5 * i), f.name("acs", seq=i)) for i in range(1500)]
    for background in (False, True):
        path = tmp_path / f"ingest-{background}.sqlite"
        log = IngestLog(path, background_checkpoints=background)
        for chunk in chunks:
            log.record_chunk(chunk, tmp_path / chunk.name, "inbox")
        frames, copied = log.checkpoint()
        if background:  # nothing was copied by the writer: every commit is still in the WAL
            assert frames > 1500 and copied == frames
        else:  # SQLite's automatic checkpoint (every 1000 pages) ran in the writer
            assert frames < 1500
        log.record_chunk(read_chunk(f.hk(t0=9e5), f.name("hk")), tmp_path / "hk", "inbox")
        assert log.checkpoint()[0] < 10, "after a checkpoint the WAL starts again"
        assert len(log.records()) == 1501
        log.close()
