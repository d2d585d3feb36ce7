"""A pointing whose record never closed: provisional products from the chunks there are."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import nrt
from detectors.quicklook import build, roots_from_files, run_quicklook
from detectors.quicklook.hook import pointing_graph
from nrt.cache import Cache
from nrt.telemetry.formats import chunk_filename, write_chunk
from tests.quicklook.conftest import ATTITUDE
from tests.quicklook.synth import write_pointing

PID = "000200010010"
TSTART, DURATION = 8.0e8, 600.0


def _open_record(directory, tstart: float):
    """The record a pointing starts with: TSTOP = TSTART (still in progress)."""
    record = {
        "POINTING": np.array([PID]),
        "TSTART": np.array([tstart]),
        "TSTOP": np.array([tstart]),
        "RA": np.array([ATTITUDE[0]]),
        "DEC": np.array([ATTITUDE[1]]),
        "ROLL": np.array([ATTITUDE[2]]),
    }
    path = directory / chunk_filename("pointing", PID, 7)
    return write_chunk(path, "pointing", PID, record, tstart, tstart)


@pytest.fixture(scope="module")
def pointing_files(tmp_path_factory):
    """(files with only the opening record, the closing record's file)."""
    d = tmp_path_factory.mktemp("open")
    files = write_pointing(d, PID, tstart=TSTART, duration=DURATION, attitude=ATTITUDE, seed=5)
    closing = next(p for p in files if p.name.startswith("pointing_"))
    data = [p for p in files if p != closing]
    return [*data, _open_record(d, TSTART)], closing


def test_open_pointing_gives_provisional_products(pointing_files, tmp_path):
    files, closing = pointing_files
    roots = roots_from_files(files)[PID]
    with pytest.raises(nrt.AnalysisException, match="no closed record"):
        run_quicklook(build(roots), Cache.open(tmp_path / "c0", tmp_path / "s0"))

    cache = Cache.open(tmp_path / "cache", tmp_path / "state")
    graph = run_quicklook(build(roots, open_pointing=True), cache, outdir=tmp_path / "open")
    info = graph.PointingInfo
    assert info.provisional is True
    assert (info.ra, info.dec, info.roll) == pytest.approx(ATTITUDE)
    assert info.tstart == pytest.approx(TSTART)
    assert info.tstop == pytest.approx(TSTART + DURATION)  # the last chunk's end
    assert graph.target.summary["exposure"] == pytest.approx(DURATION)
    for product in ("spectrum", "lightcurves", "detmap", "skyimage", "acs"):
        with fits.open(tmp_path / "open" / f"{PID}_{product}.fits") as hdus:
            for hdu in hdus:
                assert hdu.header["PTGOPEN"] is True, (product, hdu.name)
                assert hdu.header["TSTOPSRC"] == "data"
                assert hdu.header["TSTOP"] == pytest.approx(TSTART + DURATION)

    # The closing record arrives: new signatures, products without the provisional mark.
    closed_roots = roots_from_files([*files, closing])[PID]
    closed = run_quicklook(build(closed_roots), cache, outdir=tmp_path / "closed")
    assert closed.PointingInfo.signature != info.signature
    assert closed.target.signature != graph.target.signature
    assert not getattr(closed.PointingInfo, "provisional", False)
    with fits.open(tmp_path / "closed" / f"{PID}_spectrum.fits") as hdus:
        assert "PTGOPEN" not in hdus[0].header
    # Same data, same span: the provisional spectrum had the numbers the closed one has.
    assert closed.target.summary["counts"] == graph.target.summary["counts"]


def test_open_pointing_from_a_later_chunk_reaches_further(pointing_files, tmp_path):
    """The provisional span follows the data: fewer chunks, an earlier TSTOP."""
    files, _closing = pointing_files
    first_half = [p for p in files if not p.stem.endswith("_000001")]
    roots = roots_from_files(first_half)[PID]
    graph = run_quicklook(
        build(roots, open_pointing=True), Cache.open(tmp_path / "c", tmp_path / "s")
    )
    assert graph.PointingInfo.tstop == pytest.approx(TSTART + DURATION / 2)
    assert graph.PointingInfo.provisional


def test_hook_uses_the_open_info_when_the_tracker_saw_no_closed_record(pointing_files):
    files, _closing = pointing_files
    roots = roots_from_files(files)[PID]

    class Ready:  # what the tracker hands on: tstart None without a closed record
        pointing, reason, tstart, tstop = PID, "grace", None, None

    Ready.roots = roots
    work = pointing_graph(Ready, None)
    assert type(work.graph.PointingInfo).__name__ == "OpenPointingInfo"
    Ready.tstart, Ready.tstop = TSTART, TSTART + DURATION
    assert type(pointing_graph(Ready, None).graph.PointingInfo).__name__ == "PointingInfo"


def test_nrt_quicklook_command_on_an_open_pointing(pointing_files, tmp_path):
    import json
    import shutil

    from click.testing import CliRunner

    from nrt.cli import main

    files, _closing = pointing_files
    directory = tmp_path / "telemetry"
    directory.mkdir()
    for path in files:
        shutil.copy(path, directory / path.name)
    result = CliRunner().invoke(
        main, ["quicklook", str(directory), "--out", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code in (0, 2), result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["pointing"] == PID and line["provisional"] is True, line
    assert line["exposure"] == pytest.approx(DURATION)
    with fits.open(tmp_path / "out" / PID / f"{PID}_spectrum.fits") as hdus:
        assert hdus[0].header["PTGOPEN"] is True
