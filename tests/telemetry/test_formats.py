"""Chunk formats: round trips for every kind, and every malformed input the parser must refuse."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from nrt.telemetry.formats import (
    KINDS,
    MJDREF_IJD,
    TelemetryError,
    chunk_bytes,
    chunk_filename,
    data_order,
    parse_chunk_filename,
    read_chunk,
    write_chunk,
)

PID = "025600010010"


def _columns(kind: str, n: int = 200, t0: float = 1.0e8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    if kind == "acs":
        return {"TIME": t0 + 0.05 * np.arange(n), "COUNTS": rng.poisson(4500, n)}
    if kind == "isgri":
        return {
            "TIME": np.sort(rng.uniform(t0, t0 + 5, n)),
            "ENERGY": rng.uniform(15, 1000, n).astype(np.float32),
            "DETY": rng.integers(0, 128, n),
            "DETZ": rng.integers(0, 128, n),
        }
    if kind == "hk":
        return {"TIME": t0 + np.arange(5.0), "T_DET": np.full(5, -10.5), "DEADTIME": np.zeros(5)}
    return {
        "POINTING": [PID],
        "TSTART": [t0],
        "TSTOP": [t0 + 1800],
        "RA": [83.6],
        "DEC": [22.0],
        "ROLL": [10.0],
    }


def _write(tmp_path: Path, kind: str, seq: int = 1, **kw) -> Path:
    cols = kw.pop("columns", None) or _columns(kind)
    start = kw.pop("tstart", 1.0e8)
    stop = kw.pop("tstop", 1.0e8 + 1800)
    return write_chunk(
        tmp_path / chunk_filename(kind, PID, seq), kind, PID, cols, start, stop, **kw
    )


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(tmp_path: Path, kind: str) -> None:
    cols = _columns(kind)
    path = _write(tmp_path, kind, columns=cols)
    chunk = read_chunk(path)
    assert (chunk.kind, chunk.pointing, chunk.mjdref) == (kind, PID, MJDREF_IJD)
    assert chunk.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert chunk.header["TIMESYS"] == "TT" and chunk.header["POINTING"] == PID
    for name, values in cols.items():
        got = chunk.columns[name]
        assert got.dtype.isnative and len(got) == len(values)
        if got.dtype.kind == "U":
            assert list(got) == list(values)
        else:
            np.testing.assert_array_equal(got, np.asarray(values).astype(got.dtype))
    assert not list(tmp_path.glob(".*")), "the temporary file must be renamed away"


def test_canonical_dtypes_and_keywords(tmp_path: Path) -> None:
    acs = read_chunk(_write(tmp_path, "acs"))
    assert acs.columns["COUNTS"].dtype == np.int32 and acs.header["TIMEDEL"] == 0.05
    assert acs.instrument == "SPI-ACS" and acs.header["MJDREFI"] == 51544
    events = read_chunk(_write(tmp_path, "isgri"))
    assert events.columns["ENERGY"].dtype == np.float32
    assert events.columns["DETY"].dtype == events.columns["DETZ"].dtype == np.int16
    raw = fits.getheader(tmp_path / chunk_filename("isgri", PID, 1), "EVENTS")
    assert raw["TFORM1"] == "D" and raw["TFORM3"] == "I"


def test_time_origin_is_ijd(tmp_path: Path) -> None:
    chunk = read_chunk(
        _write(tmp_path, "acs", tstart=0.0, tstop=10.0, columns=_columns("acs", 10, 0.0))
    )
    assert chunk.to_time(0.0).isot == "2000-01-01T00:00:00.000"
    assert chunk.to_time(0.0).scale == "tt"
    assert abs((chunk.to_time(86400.0) - Time("2000-01-02T00:00:00", scale="tt")).sec) < 1e-6


def test_timezero_added_to_time_column(tmp_path: Path) -> None:
    cols = _columns("acs", 10, 0.0)
    path = _write(tmp_path, "acs", columns=cols, TIMEZERO=1.0e8, tstart=1.0e8, tstop=1.0e8 + 1)
    chunk = read_chunk(path)
    np.testing.assert_allclose(chunk.columns["TIME"], cols["TIME"] + 1.0e8)
    assert chunk.timezero == 1.0e8


def test_bytes_and_path_give_the_same_chunk(tmp_path: Path) -> None:
    path = _write(tmp_path, "isgri")
    from_path, from_bytes = read_chunk(path), read_chunk(path.read_bytes(), name=path.name)
    assert from_path.sha256 == from_bytes.sha256
    np.testing.assert_array_equal(from_path.columns["TIME"], from_bytes.columns["TIME"])
    assert read_chunk(path.read_bytes()).kind == "isgri"  # the kind is found without a name


def test_large_chunk_hash_on_second_thread(tmp_path: Path) -> None:
    cols = _columns("isgri", 300_000)
    path = _write(tmp_path, "isgri", columns=cols)
    assert path.stat().st_size > 4 * 1024**2
    assert read_chunk(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_inputs_same_bytes() -> None:
    cols = _columns("isgri")
    args = ("isgri", PID, cols, 1.0e8, 1.0e8 + 1800)
    assert chunk_bytes(*args) == chunk_bytes(*args)


def test_filenames() -> None:
    assert chunk_filename("acs", PID, 12) == f"acs_{PID}_000012.fits"
    assert parse_chunk_filename(f"hk_{PID}_000003.fits") == ("hk", PID, 3)
    for bad in [
        "../acs_025600010010_1.fits",
        "acs_0256_1.fits",
        "acs_025600010010_1.fits.tmp",
        f".acs_{PID}_000001.fits.123.tmp",
        "evil;rm_025600010010_1.fits",
        f"acs_{PID}_1.fits/x",
        f"acs_{PID}_\u0661.fits",
    ]:
        with pytest.raises(TelemetryError, match="file name"):
            parse_chunk_filename(bad)
    with pytest.raises(ValueError):
        chunk_filename("acs", "../../etc/pa", 1)


# ---------------------------------------------------------------- bad inputs


def _rewrite(path: Path, ext: str, mutate) -> Path:
    """Rewrite one table with astropy after ``mutate(hdul)``: a foreign producer's mistake."""
    with fits.open(path) as hdul:
        hdul.readall()
        mutate(hdul)
        hdul.writeto(path, overwrite=True)
    return path


def _error(source, name=None) -> TelemetryError:
    with pytest.raises(TelemetryError) as info:
        read_chunk(source, name=name)
    return info.value


def test_truncated_fits(tmp_path: Path) -> None:
    path = _write(tmp_path, "isgri")
    data = path.read_bytes()
    for cut in (len(data) - 3000, 2880 + 100, 1000):
        err = _error(data[:cut], name=path.name)
        assert "truncated" in err.problem and path.name in str(err)


def test_wrong_extension(tmp_path: Path) -> None:
    path = _write(tmp_path, "acs")
    wrong = tmp_path / chunk_filename("isgri", PID, 1)
    path.rename(wrong)
    err = _error(wrong)
    assert err.field == "extension" and "'EVENTS'" in err.problem and "RATE" in err.problem
    assert str(wrong) in str(err)


def test_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "isgri")
    cols = _columns("isgri")
    del cols["DETZ"]
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name=k, format={"f": "D", "i": "K"}.get(v.dtype.kind, "E"), array=v)
            for k, v in cols.items()
        ],
        header=fits.getheader(path, "EVENTS"),
    )
    table.header["EXTNAME"] = "EVENTS"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    err = _error(path)
    assert err.field == "EVENTS column DETZ" and "missing" in err.problem


def test_wrong_column_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "acs")

    def to_float32(hdul):
        data = hdul["RATE"].data
        cols = [
            fits.Column(name="TIME", format="E", array=data["TIME"].astype("f4")),
            fits.Column(name="COUNTS", format="J", array=data["COUNTS"]),
        ]
        hdul["RATE"] = fits.BinTableHDU.from_columns(cols, header=hdul["RATE"].header)

    _rewrite(path, "RATE", to_float32)
    err = _error(path)
    assert err.field == "RATE column TIME" and "64-bit" in err.fix


@pytest.mark.parametrize("bad", ["nan", "inf", "decreasing"])
def test_bad_times(tmp_path: Path, bad: str) -> None:
    cols = _columns("isgri")
    if bad == "decreasing":
        cols["TIME"][50], cols["TIME"][51] = cols["TIME"][51], cols["TIME"][50] - 1
    else:
        cols["TIME"][50] = float(bad)
    path = _write(tmp_path, "isgri", columns=cols)
    err = _error(path)
    assert err.field == "EVENTS column TIME"
    assert ("row 52" in err.problem) if bad == "decreasing" else ("non-finite" in err.problem)


def test_times_outside_tstart_tstop(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "acs", tstart=1.0e8 + 5))
    assert "outside TSTART..TSTOP" in err.problem


def test_detector_coordinates_out_of_range(tmp_path: Path) -> None:
    cols = _columns("isgri")
    cols["DETZ"][3] = 128
    err = _error(_write(tmp_path, "isgri", columns=cols))
    assert err.field == "EVENTS column DETZ" and "0-127" in err.problem


def test_pointing_mismatching_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "acs")
    other = tmp_path / chunk_filename("acs", "025600020010", 1)
    path.rename(other)
    err = _error(other)
    assert err.field == "POINTING" and "025600020010" in err.problem and PID in err.problem


def test_pointing_keyword_malformed(tmp_path: Path) -> None:
    path = _write(tmp_path, "acs", POINTING="0256")
    err = _error(path.read_bytes())
    assert err.field == "POINTING" and "12-character" in err.problem


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("TIMESYS", "UTC", "TIMESYS"),
        ("TIMEUNIT", "d", "TIMEUNIT"),
        ("TSTART", "soon", "TSTART"),
    ],
)
def test_bad_time_keywords(tmp_path: Path, key: str, value, field: str) -> None:
    path = _write(tmp_path, "acs")
    _rewrite(path, "RATE", lambda hdul: hdul["RATE"].header.set(key, value))
    assert _error(path).field == field


def test_missing_mjdref(tmp_path: Path) -> None:
    path = _write(tmp_path, "acs")

    def drop(hdul):
        del hdul["RATE"].header["MJDREFI"]
        del hdul["RATE"].header["MJDREFF"]

    _rewrite(path, "RATE", drop)
    assert _error(path).field == "MJDREF"


def test_big_file_of_zeros_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / chunk_filename("isgri", PID, 9)
    with open(path, "wb") as fh:  # sparse: 2 GB on paper, no blocks on disk
        fh.truncate(2 * 1024**3)
    err = _error(path)
    assert err.field == "file size" and "2147483648" in err.problem
    # below the size limit, zeros are still refused from the first 80 bytes
    small = tmp_path / chunk_filename("isgri", PID, 10)
    with open(small, "wb") as fh:
        fh.truncate(64 * 1024**2)
    assert _error(small).field == "payload"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello world",
        b"\x00" * 5000,
        b"SIMPLE  = F" + b" " * 69,
        "\u00e9t\u00e9".encode() * 100,
    ],
)
def test_payload_that_is_not_fits(payload: bytes) -> None:
    err = _error(payload, name=chunk_filename("acs", PID, 1))
    assert err.field == "payload" and "not FITS" in err.problem and "acs_" in str(err)


def test_header_garbage_after_magic(tmp_path: Path) -> None:
    data = bytearray(_write(tmp_path, "acs").read_bytes())
    data[2880 + 800 : 2880 + 810] = "\u00e9\u00e9\u00e9\u00e9\u00e9".encode()
    assert _error(bytes(data)).field.endswith("header")


def test_max_bytes_is_checked_before_reading(tmp_path: Path) -> None:
    path = _write(tmp_path, "isgri")
    with pytest.raises(TelemetryError, match="limit"):
        read_chunk(path, max_bytes=1000)
    os.chmod(path, 0)
    if os.geteuid() != 0:
        assert _error(path).field == "file"


def test_written_fits_is_standard(tmp_path: Path) -> None:
    """Our own writer's bytes pass astropy's verification and read back identically."""
    cols = _columns("isgri")
    data = chunk_bytes(
        "isgri", PID, cols, 1.0e8, 1.0e8 + 1800, OBJECT="it's", FLAG=True, TINY=1e-300, BIG=2**40
    )
    assert len(data) % 2880 == 0
    import io
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(io.BytesIO(data)) as hdul:
            hdul.verify("exception")
            header, table = hdul["EVENTS"].header, hdul["EVENTS"].data
            assert header["OBJECT"] == "it's" and header["FLAG"] is True
            assert header["TINY"] == 1e-300 and header["BIG"] == 2**40
            assert hdul[0].header["POINTING"] == PID
            for name in cols:
                np.testing.assert_array_equal(table[name], cols[name])
    chunk = read_chunk(data)
    assert chunk.header["OBJECT"] == "it's" and chunk.header["TINY"] == 1e-300
    with pytest.raises(ValueError, match="ASCII"):
        chunk_bytes("acs", PID, _columns("acs"), 1.0e8, 1.0e8 + 1800, OBJECT="caf\u00e9")
    with pytest.raises(ValueError, match="finite"):
        chunk_bytes("acs", PID, _columns("acs"), 1.0e8, float("nan"))


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    from nrt.telemetry.formats import atomic_write

    with pytest.raises(TypeError):
        atomic_write(tmp_path / "x.fits", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    path = atomic_write(tmp_path / "y.fits", b"abc", fsync=False)
    assert path.read_bytes() == b"abc" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["y.fits"]


@pytest.mark.parametrize(
    ("card", "field"),
    [
        (b"MJDREFI =                51544", b"MJDREFI = 'fifty-one'"),
        (b"TFIELDS =                    4", b"TFIELDS = 'four'"),
        (b"NAXIS1  =                   16", b"NAXIS1  =                    T"),
    ],
)
def test_non_numeric_keywords_are_telemetry_errors(
    tmp_path: Path, card: bytes, field: bytes
) -> None:
    """A wrong-typed keyword is a TelemetryError naming it, never a bare ValueError."""
    data = chunk_bytes("isgri", PID, _columns("isgri"), 1.0e8, 1.0e8 + 1800)
    start = data.index(card, 2880)
    assert len(field) <= len(card)
    bad = data[:start] + field.ljust(len(card)) + data[start + len(card) :]
    err = _error(bad, name=chunk_filename("isgri", PID, 1))
    assert card.split()[0].decode() in err.field


def test_data_order_puts_a_backlog_in_time_order_with_each_pointing_record_early() -> None:
    """The inbox handles a batch of files in this order (and a rescan, and a replay)."""
    import random

    expected = [
        chunk_filename(kind, pointing, seq)
        for pointing in ("300000010010", "300000010021")
        for seq in (1, 2, 3)
        for kind in ("acs", "isgri", "hk", "pointing")
        if kind != "pointing" or seq < 3
    ] + ["notes.txt", "zz_not_a_chunk.fits"]
    shuffled = expected[:]
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled, key=data_order) == expected
    # in name order the pointing records came after all of the pointing's data
    assert sorted(expected[:11]).index(chunk_filename("pointing", "300000010010", 1)) == 9
