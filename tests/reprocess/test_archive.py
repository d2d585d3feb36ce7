"""The default graph: the daemon's quick-look over the telemetry its ingest log recorded."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from nrt import archive
from nrt.cache import Cache, Index, LocalTier
from nrt.cli import main
from nrt.execute import LocalExecutor, run
from nrt.telemetry.formats import read_chunk
from nrt.telemetry.ingest import IngestLog
from tests.quicklook.synth import write_pointing

POINTINGS = {"110000010010": 8.0e8, "110000020010": 8.0e8 + 3600.0}


@pytest.fixture
def archived(tmp_path, isolated_nrt_dirs):
    """Two pointings of telemetry, ingested as the daemon does (same state directory)."""
    log = IngestLog()
    (tmp_path / "telemetry").mkdir()
    for pid, tstart in POINTINGS.items():
        for path in write_pointing(tmp_path / "telemetry", pid, tstart=tstart, duration=300.0):
            log.record_chunk(read_chunk(path), path, "inbox")
    log.close()
    archive._log.cache_clear()
    return isolated_nrt_dirs


def utc(seconds: float) -> str:
    """Seconds since MJD 51544 TT -> ISO UTC (what --from/--to take)."""
    from astropy.time import Time

    when = Time(51544.0 + seconds / 86400.0, format="mjd", scale="tt").utc.datetime
    return when.replace(tzinfo=dt.UTC).isoformat()


def invoke(*args: str):
    result = CliRunner().invoke(main, ["reprocess", *args], catch_exceptions=False)
    return result, [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]


def test_reprocessing_the_archive_gives_the_serial_products(archived, cluster, tmp_path):
    ids = ",".join(POINTINGS)
    result, lines = invoke("--pointings", ids, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    summary = lines[-1]
    assert summary["errors"] == 0 and summary["submitted"] > 10

    serial_root = tmp_path / "serial"
    serial = Cache([LocalTier(serial_root)], Index(tmp_path / "serial.db"))
    shared = Cache.open()
    for pid in POINTINGS:
        for element in archive.pointing_graph(pid):
            run(element, cache=serial, executor=LocalExecutor(max_workers=1))
            for e in element.walk():
                if type(e).cached:
                    mine = shared.local.read_manifest(e.signature)
                    assert mine is not None, f"{type(e).__name__} missing from the shared cache"
                    assert mine["files"] == serial.local.read_manifest(e.signature)["files"]

    result, lines = invoke("--pointings", ids, "--scheduler", cluster.scheduler_address)
    assert lines[-1]["submitted"] == 0


def test_dates_select_archived_pointings_and_unknown_ones_are_errors(archived, cluster):
    first, second = POINTINGS.values()
    result, lines = invoke(
        "--from", utc(first - 60), "--to", utc(second - 60), "--elements", "TelemetryFiles",
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert lines[0]["pointings"] == 1
    assert {x["pointing"] for x in lines if x["event"] == "element"} == {"110000010010"}

    result, lines = invoke(
        "--pointings", "110000010010,999900010010", "--elements", "TelemetryFiles",
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 1
    skipped = [x for x in lines if x["event"] == "pointing"]
    assert skipped[0]["pointing"] == "999900010010"
    assert "not in the ingest log" in skipped[0]["error"]
    assert lines[-1]["pointings_skipped"] == 1 and lines[-1]["ok"] > 0


def test_an_archived_pointing_is_what_the_live_tracker_handed_on(tmp_path, isolated_nrt_dirs):
    """Closed: the same file set, span and roots as the live announcement (so the same
    signatures). Open (its record never closed): provisional, ended where the data reach."""
    from nrt.telemetry.formats import write_chunk
    from nrt.telemetry.pointings import PointingTracker

    live_log = IngestLog()
    tracker = PointingTracker(live_log)
    closed, still_open = POINTINGS
    (tmp_path / "telemetry").mkdir()
    announced = []
    for path in write_pointing(tmp_path / "telemetry", closed, tstart=8.0e8, duration=300.0):
        announced += tracker.add(live_log.record_chunk(read_chunk(path), path, "inbox"))
    files = write_pointing(tmp_path / "telemetry", still_open, tstart=8.1e8, duration=300.0)
    record = dict(read_chunk(files[-1]).columns)  # rewritten as still in progress
    record["TSTOP"] = record["TSTART"]
    write_chunk(files[-1], "pointing", still_open, record, 8.1e8, 8.1e8)
    for path in files:
        announced += tracker.add(live_log.record_chunk(read_chunk(path), path, "inbox"))
    live_log.close()
    archive._log.cache_clear()
    (live,) = announced  # the open one waits for its grace time
    found = archive.ready(closed)
    assert (found.digest, found.tstart, found.tstop) == (live.digest, live.tstart, live.tstop)
    assert {k: r.signature for k, r in found.roots.items()} == {
        k: r.signature for k, r in live.roots.items()
    }
    assert found.data_stop is None
    provisional = archive.ready(still_open)
    assert provisional.tstop is None and provisional.data_stop == pytest.approx(8.1e8 + 300.0)
