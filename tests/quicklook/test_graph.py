"""The quick-look graph: products, FITS files, caching and exact recomputation."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from detectors.quicklook import build, run_quicklook
from detectors.quicklook.calibration import EnergyCalibration
from nrt.cache import Cache
from nrt.telemetry import codedmask
from tests.quicklook.conftest import ATTITUDE, SOURCE, ran_since, runs
from tests.support.services import require_binary

ALL = {
    "TelemetryFiles": 4,
    "LineFit": 1,
    "EnergyCalibration": 1,
    "CalibratedEvents": 1,
    "PointingInfo": 1,
    "Spectrum": 1,
    "LightCurves": 1,
    "SkyImage": 1,
    "DetectorMap": 1,
    "AcsSummary": 1,
    "CalibrationLinesCheck": 1,
    "ModuleRatesCheck": 1,
    "PixelCheck": 1,
    "ShieldRateCheck": 1,
    "DeadTimeCheck": 1,
    "HousekeepingCheck": 1,
    "QuickLook": 1,
}


def fresh_cache(tmp_path) -> Cache:
    """A new chain over the same directories: what a restarted daemon sees."""
    return Cache.open(tmp_path / "cache", tmp_path / "state")


def test_cold_warm_and_calibration_bump(clean_roots, tmp_path, monkeypatch):
    before = runs()
    run_quicklook(build(clean_roots), fresh_cache(tmp_path))
    assert ran_since(before) == ALL  # every element once, the shared ones included

    before = runs()
    warm = run_quicklook(build(clean_roots), fresh_cache(tmp_path))
    assert ran_since(before) == {}  # nothing ran: the target came back from the disk cache
    assert warm.target.summary["counts"] > 0

    monkeypatch.setattr(EnergyCalibration, "version", "bumped-by-test")
    before = runs()
    bumped = run_quicklook(build(clean_roots), fresh_cache(tmp_path))
    assert ran_since(before) == {
        "EnergyCalibration": 1,
        "CalibratedEvents": 1,
        "TelemetryFiles": 1,  # the ISGRI events are read again for CalibratedEvents
        "Spectrum": 1,
        "LightCurves": 1,
        "SkyImage": 1,
        "CalibrationLinesCheck": 1,
        "QuickLook": 1,
    }
    assert bumped.target.summary == warm.target.summary  # same code, same numbers


def test_products_are_fits_that_astropy_opens(clean_roots, tmp_path):
    graph = run_quicklook(build(clean_roots), fresh_cache(tmp_path), outdir=tmp_path / "out")
    pid = graph.pointing
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        f"{pid}_{k}.fits" for k in ("acs", "detmap", "lightcurves", "skyimage", "spectrum")
    ]
    for name in names:
        with fits.open(tmp_path / "out" / name, checksum=True) as hdul:  # verifies CHECKSUM
            assert hdul[0].header["POINTING"] == pid
            assert all(h.header.get("NRTSIG") for h in hdul[1:])

    with fits.open(tmp_path / "out" / f"{pid}_spectrum.fits") as hdul:
        spec, ebounds = hdul["SPECTRUM"].data, hdul["EBOUNDS"].data
        assert hdul["SPECTRUM"].header["EXPOSURE"] == pytest.approx(1800.0)
        energies = graph.CalibratedEvents.energy
        inside = ((energies >= ebounds["E_MIN"][0]) & (energies < ebounds["E_MAX"][-1])).sum()
        assert spec["COUNTS"].sum() == inside
        # the 59.3 keV line sits in the calibrated spectrum where it belongs
        peak = np.argmax(spec["COUNTS"] * ((ebounds["E_MIN"] > 45) & (ebounds["E_MAX"] < 75)))
        assert ebounds["E_MIN"][peak] <= 59.3 * 1.02 and ebounds["E_MAX"][peak] >= 59.3 * 0.98

    with fits.open(tmp_path / "out" / f"{pid}_lightcurves.fits") as hdul:
        lc = hdul["RATE"].data
        assert len(lc) == 180 and np.all(np.diff(lc["TIME"]) == 10.0)
        total = sum(
            (lc[c] * lc["TIMEDEL"]).sum() for c in lc.columns.names if c.startswith("RATE_")
        )
        assert total == pytest.approx(((energies >= 15) & (energies < 1000)).sum())

    with fits.open(tmp_path / "out" / f"{pid}_detmap.fits") as hdul:
        image = hdul["DETMAP"].data
        assert image.shape == (128, 128) and image.sum() == len(energies)

    with fits.open(tmp_path / "out" / f"{pid}_skyimage.fits") as hdul:
        sig = hdul["SIGNIFICANCE"].data
        w = WCS(hdul["SIGNIFICANCE"].header)
        sources = hdul["SOURCES"].data
        row, col = np.unravel_index(np.argmax(sig), sig.shape)  # data[sky_z, sky_y]
        ra, dec = w.pixel_to_world_values(col, row)
        y, z = codedmask.sky_pixel_to_angles(col, row)
        ra2, dec2 = codedmask.instrument_to_radec(y, z, ATTITUDE)
        assert ra == pytest.approx(float(ra2), abs=1e-6) and dec == pytest.approx(
            float(dec2), abs=1e-6
        )
        # the injected source is the brightest one listed, where it was put
        assert sources["Y_DEG"][0] == pytest.approx(SOURCE[0], abs=0.1)
        assert sources["Z_DEG"][0] == pytest.approx(SOURCE[1], abs=0.1)
        assert sources["SIGNIFICANCE"][0] > 20


def test_products_written_from_a_warm_cache_are_the_same(clean_roots, tmp_path):
    run_quicklook(build(clean_roots), fresh_cache(tmp_path), outdir=tmp_path / "cold")
    before = runs()
    run_quicklook(build(clean_roots), fresh_cache(tmp_path), outdir=tmp_path / "warm")
    assert ran_since(before) == {}
    for cold in sorted((tmp_path / "cold").iterdir()):
        with fits.open(cold) as a, fits.open(tmp_path / "warm" / cold.name) as b:
            assert len(a) == len(b)
            for ha, hb in zip(a[1:], b[1:], strict=True):
                assert ha.header["NRTSIG"] == hb.header["NRTSIG"]
                if ha.is_image:
                    assert np.array_equal(ha.data, hb.data)
                else:
                    assert ha.data.tobytes() == hb.data.tobytes()


def test_products_pass_fitsverify(clean_roots, tmp_path):
    """HEASARC's fitsverify: the FITS standard and its conventions, no errors, no warnings."""
    fitsverify = require_binary("fitsverify")
    run_quicklook(build(clean_roots), fresh_cache(tmp_path), outdir=tmp_path / "out")
    for path in sorted((tmp_path / "out").iterdir()):
        done = subprocess.run([fitsverify, str(path)], capture_output=True, text=True, timeout=60)
        assert "0 warning(s) and 0 error(s)" in done.stdout, done.stdout


def test_sky_wcs_matches_the_attitude_frame_everywhere():
    from detectors.quicklook.fitsout import sky_wcs

    for attitude in ((10.0, -30.0, 0.0), (250.0, 60.0, 123.0), (83.6, 22.0, 300.0)):
        w = sky_wcs(*attitude)
        i, j = np.meshgrid([0, 30, 69, 100, 138], [0, 50, 69, 138])
        ra, dec = w.pixel_to_world_values(i.ravel(), j.ravel())
        ra2, dec2 = codedmask.instrument_to_radec(
            *codedmask.sky_pixel_to_angles(i.ravel(), j.ravel()), attitude
        )
        assert np.allclose(dec, dec2, atol=1e-6)
        assert np.allclose((ra - ra2 + 180) % 360 - 180, 0, atol=1e-6)


def test_gain_is_recovered_and_energies_calibrated(tmp_path):
    from detectors.quicklook import roots_from_files
    from tests.quicklook.synth import write_pointing

    files = write_pointing(tmp_path, "000100020010", duration=900, gain=1.04, seed=5)
    graph = run_quicklook(build(roots_from_files(files)["000100020010"]), fresh_cache(tmp_path))
    cal = graph.EnergyCalibration
    assert cal.gain == pytest.approx(1.04, abs=3 * cal.gain_err + 1e-4)
    assert cal.source == "lines:511,59.3"
    e = graph.CalibratedEvents.energy
    near = e[(e > 480) & (e < 540)]
    assert np.median(near) == pytest.approx(511, abs=3)


def test_missing_kind_is_a_clear_error(clean_roots):
    roots = dict(clean_roots)
    del roots["hk"]
    with pytest.raises(ValueError, match=r"missing \['hk'\]"):
        build(roots)
    with pytest.raises(ValueError, match=r"checks.no_such_check: unknown check"):
        build(clean_roots, limits={"no_such_check": {}})


def test_nrt_quicklook_command(clean_pointing, tmp_path):
    import json

    from click.testing import CliRunner

    from nrt.cli import main

    pid, files = clean_pointing
    directory = files[0].parent
    result = CliRunner().invoke(
        main, ["quicklook", str(directory), "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["pointing"] == pid and line["status"] == 0 and line["sources"]
    assert len(list((tmp_path / pid).glob("*.fits"))) == 5
    text = CliRunner().invoke(main, ["quicklook", str(directory)])
    assert text.exit_code == 0 and "all checks ok" in text.output
    missing = CliRunner().invoke(main, ["quicklook", str(directory), "--pointing", "999999999999"])
    assert missing.exit_code == 1 and "no files for pointing(s) 999999999999" in missing.output
