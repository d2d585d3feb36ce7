"""Light-curve readers on real files (../shared/realdata) and on written edge cases."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from nrt.telemetry.errors import TelemetryError
from nrt.telemetry.lightcurves import read_lightcurve

BAT_BURSTS = ["050525A", "060614", "080916A", "100621A", "130603B", "160314A", "211211A", "231117A"]

# BAT trigger times quoted by GCN circulars (to the second): 3466 and 14735.
GCN_BAT_TRIGGERS = {"050525A": "2005-05-25T00:02:53", "130603B": "2013-06-03T15:49:14"}
GBM_TRIGGER_230307A = Time("2023-03-07T15:44:06.67", scale="utc")


def test_every_realdata_file_loads(realdata: Path) -> None:
    files = sorted(p for p in realdata.iterdir() if p.suffix in (".fits", ".lc"))
    assert len(files) == 9
    for path in files:
        lc = read_lightcurve(path)
        n = len(lc.time)
        assert n > 1000 and lc.width.shape == lc.counts.shape == lc.exposure.shape == (n,)
        assert np.all(lc.width > 0) and np.all(np.diff(lc.time) > 0)
        assert np.all(lc.counts >= 0) and np.all(lc.exposure <= lc.width + 1e-9)
        assert lc.gti.ndim == 2 and lc.gti.shape[1] == 2
        assert lc.timesys == "TT" and lc.source == str(path)


@pytest.mark.parametrize("burst", BAT_BURSTS)
def test_bat_trigger_lands_on_the_named_day(realdata: Path, burst: str) -> None:
    lc = read_lightcurve(realdata / f"bat_grb{burst}_64ms.lc")
    assert lc.instrument == "BAT" and lc.band == (15.0, 350.0)
    assert lc.trigger_time == fits.getheader(realdata / f"bat_grb{burst}_64ms.lc")["TRIGTIME"]
    utc = lc.to_time(lc.trigger_time).utc
    assert utc.datetime.strftime("%y%m%d") == burst[:6]
    # the files cover roughly -240 s .. +960 s around the trigger
    assert lc.time[0] < lc.trigger_time - 200 and lc.time[-1] > lc.trigger_time + 300
    # TOTCOUNTS are used as counts, never the background-subtracted RATE
    raw = fits.getdata(realdata / f"bat_grb{burst}_64ms.lc", "RATE")
    np.testing.assert_array_equal(lc.counts, raw["TOTCOUNTS"].astype(float))
    np.testing.assert_allclose(lc.exposure, 0.064 * np.clip(raw["FRACEXP"], 0, 1), rtol=1e-6)


@pytest.mark.parametrize("burst", BAT_BURSTS)
def test_bat_reference_time_matches_date_obs(realdata: Path, burst: str) -> None:
    """MJDREFI+MJDREFF (TT) put TSTART at the header's own DATE-OBS (before clock correction)."""
    path = realdata / f"bat_grb{burst}_64ms.lc"
    lc, header = read_lightcurve(path), fits.getheader(path, "RATE")
    uncorrected = Time(lc.mjdref, header["TSTART"] / 86400, format="mjd", scale="tt").utc
    # DATE-OBS has whole seconds; the 2010 file's is one second late (a Swift tool's rounding)
    assert abs((uncorrected - Time(header["DATE-OBS"], scale="utc")).sec) < 1.01


@pytest.mark.parametrize(("burst", "gcn"), sorted(GCN_BAT_TRIGGERS.items()))
def test_bat_trigger_matches_gcn_circular(realdata: Path, burst: str, gcn: str) -> None:
    lc = read_lightcurve(realdata / f"bat_grb{burst}_64ms.lc")
    assert abs((lc.to_time(lc.trigger_time).utc - Time(gcn, scale="utc")).sec) < 1.0


def test_swift_clock_correction_matters(realdata: Path) -> None:
    """Without UTCF the 2013 trigger would be 7.6 s late: the correction is not cosmetic."""
    lc = read_lightcurve(realdata / "bat_grb130603B_64ms.lc")
    assert lc.clock_correction == pytest.approx(-10.6314 + 3, abs=1e-6)  # UTCF + 3 leap seconds
    naive = Time(lc.mjdref, lc.trigger_time / 86400, format="mjd", scale="tt").utc
    assert (naive - Time(GCN_BAT_TRIGGERS["130603B"], scale="utc")).sec > 7


def test_bat_gti_extension(realdata: Path) -> None:
    lc = read_lightcurve(realdata / "bat_grb231117A_64ms.lc")
    gti = fits.getdata(realdata / "bat_grb231117A_64ms.lc", "STDGTI")
    assert lc.gti.shape == (2, 2)
    np.testing.assert_array_equal(lc.gti, np.column_stack([gti["START"], gti["STOP"]]))


def test_spiacs_absolute_time_and_burst(realdata: Path) -> None:
    path = realdata / "spiacs_grb230307a_0.1s.fits"
    lc, header = read_lightcurve(path), fits.getheader(path, "RATE")
    assert lc.instrument == "SPI-ACS" and lc.mjdref == 51544.0 and lc.band is None
    # TIMEZERO is applied: times are INTEGRAL IJD seconds
    raw = fits.getdata(path, "RATE")
    np.testing.assert_allclose(lc.time, raw["TIME"] + header["TIMEZERO"])
    assert lc.to_time(header["TIMEZERO"]).utc.isot == "2023-03-07T15:45:35.979"
    # TSTART in TT is the header's DATE-OBS (this file writes DATE-OBS in TT)
    assert lc.to_time(header["TSTART"]).isot.startswith(header["DATE-OBS"])
    # the burst: first bin far above the pre-burst background lands at the GBM trigger
    # (INTEGRAL was ~143,000 km away: light travel time below 0.5 s)
    rate = lc.counts / lc.width
    background = np.median(rate[:1000])
    onset = lc.time[np.argmax(rate > background + 10 * np.sqrt(background / 0.1) * 1.2)]
    assert abs((lc.to_time(onset).utc - GBM_TRIGGER_230307A).sec) < 1.0
    assert 8.5e4 < background < 9.5e4


def test_spiacs_uneven_bins_from_time_spacing(realdata: Path) -> None:
    lc = read_lightcurve(realdata / "spiacs_grb230307a_0.1s.fits")
    raw = fits.getdata(realdata / "spiacs_grb230307a_0.1s.fits", "RATE")
    assert set(np.round(lc.width, 3)) == {0.075, 0.1, 0.125}
    np.testing.assert_allclose(lc.width[:-1], np.diff(raw["TIME"]), atol=1e-6)
    np.testing.assert_allclose(lc.counts, raw["RATE"] * lc.width)


# --------------------------------------------------------------------------- written files


def _lc_file(path: Path, columns: dict, header: dict | None = None, extra=()) -> Path:
    cols = [
        fits.Column(name=k, format="D" if v.dtype.kind == "f" else "J", array=v)
        for k, v in columns.items()
    ]
    table = fits.BinTableHDU.from_columns(cols, name="RATE")
    for key, value in {"MJDREFI": 51544, "MJDREFF": 0.0, "TIMESYS": "TT", **(header or {})}.items():
        table.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), table, *extra]).writeto(path)
    return path


def test_counts_column_timezero_and_mjdref(tmp_path: Path) -> None:
    t = np.arange(10) * 0.5
    path = _lc_file(
        tmp_path / "a.fits",
        {"TIME": t, "COUNTS": np.arange(10, dtype=np.int32)},
        {"TIMEZERO": 100.0, "TIMEDEL": 0.5, "MJDREF": 50000.0, "INSTRUME": "X"},
    )
    fits.setval(path, "MJDREFI", ext=1, value=51000)  # MJDREFI+MJDREFF wins over MJDREF
    lc = read_lightcurve(path)
    np.testing.assert_array_equal(lc.time, t + 100)
    np.testing.assert_array_equal(lc.counts, np.arange(10))
    assert lc.mjdref == 51000 and lc.instrument == "X"
    np.testing.assert_array_equal(lc.gti, [[100.0, 105.0]])
    assert lc.to_time(0.0).mjd == 51000


def test_rate_times_width_with_gap_and_timepixr(tmp_path: Path) -> None:
    t = np.array([0.0, 1.0, 2.0, 10.0, 11.0])  # a gap after 2.0
    path = _lc_file(
        tmp_path / "b.fits", {"TIME": t, "RATE": np.full(5, 4.0)}, {"TIMEDEL": 1.0, "TIMEPIXR": 0.5}
    )
    lc = read_lightcurve(path)
    np.testing.assert_array_equal(lc.width, np.ones(5))
    np.testing.assert_array_equal(lc.time, t - 0.5)
    np.testing.assert_array_equal(lc.counts, np.full(5, 4.0))


def test_gti_fracexp_ebounds_and_gzip(tmp_path: Path) -> None:
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", array=[0.0, 6.0]),
            fits.Column(name="STOP", format="D", array=[4.0, 9.0]),
        ],
        name="GTI",
    )
    eb = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="CHANNEL", format="I", array=[0, 1]),
            fits.Column(name="E_MIN", format="E", array=[20.0, 50.0]),
            fits.Column(name="E_MAX", format="E", array=[50.0, 200.0]),
        ],
        name="EBOUNDS",
    )
    path = _lc_file(
        tmp_path / "c.fits",
        {"TIME": np.arange(10.0), "COUNTS": np.ones(10, "i4"), "FRACEXP": np.linspace(0.1, 1, 10)},
        {"TIMEDEL": 1.0},
        extra=(gti, eb),
    )
    gz = tmp_path / "c.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    lc = read_lightcurve(gz)
    np.testing.assert_array_equal(lc.gti, [[0.0, 4.0], [6.0, 9.0]])
    np.testing.assert_allclose(lc.exposure, np.linspace(0.1, 1, 10))
    assert lc.band == (20.0, 200.0)
    np.testing.assert_allclose(lc.rate, 1 / np.linspace(0.1, 1, 10))


def test_background_subtracted_rate_is_refused(tmp_path: Path) -> None:
    path = _lc_file(
        tmp_path / "d.fits",
        {"TIME": np.arange(5.0), "RATE": np.array([1, -1, 2, 0, 1.0])},
        {"TIMEDEL": 1.0},
    )
    with pytest.raises(TelemetryError, match="background-subtracted") as info:
        read_lightcurve(path)
    assert info.value.field == "RATE column RATE" and "d.fits" in str(info.value)
    bat = _lc_file(
        tmp_path / "e.fits",
        {"TIME": np.arange(5.0), "RATE": np.ones(5)},
        {"TIMEDEL": 1.0, "INSTRUME": "BAT"},
    )
    with pytest.raises(TelemetryError, match="TOTCOUNTS"):
        read_lightcurve(bat)


@pytest.mark.parametrize(
    ("text", "counts", "width"),
    [
        ("0 10\n1 12\n2 9\n", [10, 12, 9], [1, 1, 1]),
        (
            "# a comment\n0.0, 100.2, 10\n0.5, 120.4, 11\n1.5, 80.6, 9\n",
            [50.1, 120.4, 80.6 * 0.75],
            [0.5, 1, 0.75],  # the last bin is nominal: the median spacing
        ),
        ("time counts error\n0 5 2.2\n2 7 2.6\n", [5, 7], [2, 2]),
        ("# COLUMNS = time rate error\n# TIMEDEL = 0.25\n0 4\n0.25 8\n", [1, 2], [0.25, 0.25]),
    ],
)
def test_text_files(tmp_path: Path, text: str, counts: list, width: list) -> None:
    path = tmp_path / "lc.txt"
    path.write_text(text)
    lc = read_lightcurve(path)
    np.testing.assert_allclose(lc.counts, counts)
    np.testing.assert_allclose(lc.width, width)
    assert lc.mjdref == 51544.0 and lc.timesys == "TT"


def test_text_header_keys(tmp_path: Path) -> None:
    path = tmp_path / "lc.txt"
    path.write_text(
        "# MJDREF = 51910\n# TIMEZERO: 1000\n# INSTRUME = GBM\n# TRIGTIME = 1001\n0 3\n1 4\n"
    )
    lc = read_lightcurve(path)
    assert lc.mjdref == 51910 and lc.instrument == "GBM" and lc.trigger_time == 1001
    np.testing.assert_array_equal(lc.time, [1000, 1001])


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"0 1 2 3\n1 2 3 4\n", "line 1"),
        (b"0 1\n1 2 3\n", "line 2"),
        (b"0 1\nabc def\n", "line 2"),
        (b"1 5\n0 4\n", "text column TIME"),
        (b"0 -5\n1 4\n", "column 2"),
        (b"", "data"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "payload"),
    ],
)
def test_bad_text_files(tmp_path: Path, content: bytes, field: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(TelemetryError) as info:
        read_lightcurve(path)
    assert info.value.field == field and "bad.txt" in str(info.value)


def test_bad_fits_files(tmp_path: Path, realdata: Path) -> None:
    data = (realdata / "bat_grb130603B_64ms.lc").read_bytes()
    cut = tmp_path / "cut.lc"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TelemetryError, match="truncated"):
        read_lightcurve(cut)
    no_table = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4)))]).writeto(no_table)
    with pytest.raises(TelemetryError, match="no table with TIME") as info:
        read_lightcurve(no_table)
    assert info.value.field == "light curve table"
    unsorted = _lc_file(
        tmp_path / "u.fits",
        {"TIME": np.array([0.0, 2.0, 1.0]), "COUNTS": np.ones(3, "i4")},
        {"TIMEDEL": 1.0},
    )
    with pytest.raises(TelemetryError, match="not increasing at row 3"):
        read_lightcurve(unsorted)
    with pytest.raises(TelemetryError, match="cannot be read"):
        read_lightcurve(tmp_path / "missing.fits")


def test_multichannel_counts_and_timedel_column(tmp_path: Path) -> None:
    counts = np.arange(12, dtype=np.int32).reshape(4, 3)
    cols = [
        fits.Column(name="TIME", format="D", array=np.array([0.0, 1.0, 3.0, 4.0])),
        fits.Column(name="COUNTS", format="3J", array=counts),
        fits.Column(name="TIMEDEL", format="D", array=np.array([1.0, 2.0, 1.0, 0.5])),
    ]
    table = fits.BinTableHDU.from_columns(cols, name="RATE")
    table.header["MJDREF"] = 51544.5
    path = tmp_path / "m.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    lc = read_lightcurve(path)
    np.testing.assert_array_equal(lc.counts, counts.sum(axis=1))
    np.testing.assert_array_equal(lc.width, [1.0, 2.0, 1.0, 0.5])
    assert lc.mjdref == 51544.5 and lc.instrument == "UNKNOWN"


def test_utc_time_system_is_converted_to_tt(tmp_path: Path) -> None:
    path = tmp_path / "utc.txt"
    path.write_text("# MJDREF = 60000\n# TIMESYS = UTC\n0 5\n1 6\n")
    lc = read_lightcurve(path)
    assert lc.timesys == "UTC"
    t = lc.to_time(0.0)
    assert t.scale == "tt" and abs((t - Time(60000, format="mjd", scale="utc")).sec) < 1e-6
    assert (t.tt.mjd - 60000) * 86400 == pytest.approx(69.184, abs=1e-3)  # TT - UTC in 2023
