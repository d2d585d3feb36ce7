"""Telemetry chunk formats (DESIGN.md section 5): one FITS file per chunk, OGIP style.

| kind       | extension  | columns                                                     |
|------------|------------|-------------------------------------------------------------|
| `acs`      | `RATE`     | `TIME` (bin start, f8), `COUNTS` (i4); `TIMEDEL` = 0.05      |
| `isgri`    | `EVENTS`   | `TIME` (f8), `ENERGY` (keV, f4), `DETY`, `DETZ` (i2, 0-127)  |
| `hk`       | `HK`       | `TIME` (f8) and one numeric column per housekeeping parameter|
| `pointing` | `POINTING` | `POINTING` (12A), `TSTART`, `TSTOP`, `RA`, `DEC`, `ROLL` (f8) |

Times are TT seconds since ``MJDREF`` (INTEGRAL IJD: ``MJDREFI = 51544``, ``MJDREFF = 0``),
with ``TIMEZERO`` added to ``TIME``. ``TSTART``/``TSTOP`` are absolute (``TIMEZERO`` is not
added to them, as in INTEGRAL's own SPI-ACS files). Every chunk carries ``INSTRUME`` and the
12-character ``POINTING`` id; files are named ``<kind>_<pointing>_<seq>.fits``.

The reader is the one gate every producer's bytes pass (inbox files, MQTT payloads, users'
own producers), so it trusts nothing: the size is checked before anything is read, the FITS
structure is walked by hand (the table is then viewed with numpy, which is as fast as astropy
and lets a truncated file be told apart from a short one), and every failure is a
:class:`TelemetryError` naming the file, the field and the fix.

Writers publish atomically: the bytes go to a hidden temporary name in the destination
directory (``.<final name>.<random>.tmp``, which never matches the chunk pattern), are fsynced,
and are renamed into place, so a watcher never sees half a file.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nrt.telemetry.codedmask import DETECTOR_PIXELS
from nrt.telemetry.errors import TelemetryError
from nrt.telemetry.fitsio import (
    check_magic,
    header_number,
    table_bytes,
    table_columns,
    walk_hdus,
)

__all__ = [
    "KINDS",
    "Chunk",
    "TelemetryError",
    "chunk_bytes",
    "chunk_filename",
    "parse_chunk_filename",
    "read_chunk",
    "write_chunk",
]

KINDS: tuple[str, ...] = ("acs", "isgri", "hk", "pointing")

#: kind -> FITS extension name.
EXTENSIONS: dict[str, str] = {"acs": "RATE", "isgri": "EVENTS", "hk": "HK", "pointing": "POINTING"}

#: default INSTRUME per kind (a producer may set its own).
INSTRUMENTS: dict[str, str] = {
    "acs": "SPI-ACS",
    "isgri": "ISGRI",
    "hk": "ISGRI",
    "pointing": "INTEGRAL",
}

#: INTEGRAL Julian Date origin: MJD 51544.0 TT (2000-01-01T00:00:00 TT).
MJDREF_IJD = 51544.0


def tt_time(seconds: Any, mjdref: float = MJDREF_IJD):
    """Seconds (TT) since ``mjdref`` (default: the INTEGRAL epoch) as an astropy ``Time``."""
    from astropy.time import Time

    return Time(mjdref, np.asarray(seconds, dtype=float) / 86400.0, format="mjd", scale="tt")


#: SPI-ACS native bin width (s).
ACS_TIMEDEL = 0.05
#: files larger than this are refused before a byte is read (1e6 events are ~16 MB).
MAX_CHUNK_BYTES = 512 * 1024**2

POINTING_ID = re.compile(r"[0-9A-Za-z]{12}")
CHUNK_NAME = re.compile(
    r"(?P<kind>acs|isgri|hk|pointing)_(?P<pointing>[0-9A-Za-z]{12})_(?P<seq>[0-9]{1,9})\.fits"
)

#: required columns per kind: name -> (numpy kind letters accepted, canonical dtype).
_FLOAT, _INT = "f", "iu"
REQUIRED: dict[str, dict[str, tuple[str, str]]] = {
    "acs": {"TIME": (_FLOAT, "f8"), "COUNTS": (_INT, "i4")},
    "isgri": {
        "TIME": (_FLOAT, "f8"),
        "ENERGY": (_FLOAT, "f4"),
        "DETY": (_INT, "i2"),
        "DETZ": (_INT, "i2"),
    },
    "hk": {"TIME": (_FLOAT, "f8")},
    "pointing": {
        "POINTING": ("SU", "U12"),
        "TSTART": (_FLOAT, "f8"),
        "TSTOP": (_FLOAT, "f8"),
        "RA": (_FLOAT, "f8"),
        "DEC": (_FLOAT, "f8"),
        "ROLL": (_FLOAT, "f8"),
    },
}

_THREADED_HASH_BYTES = 4 * 1024**2


@dataclass(frozen=True, eq=False)
class Chunk:
    """One validated telemetry file.

    ``columns`` hold native-endian arrays in the canonical dtypes of the table above;
    ``columns["TIME"]`` has ``timezero`` already added. ``header`` merges the primary
    and table headers (table wins), without COMMENT/HISTORY cards.
    """

    kind: str
    pointing: str
    instrument: str
    name: str
    sha256: str
    header: dict[str, Any]
    columns: dict[str, np.ndarray]
    tstart: float
    tstop: float
    mjdref: float
    timezero: float

    @property
    def nrows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def to_time(self, seconds: Any):
        """Seconds since ``mjdref`` (TT) as an astropy ``Time``."""
        return tt_time(seconds, self.mjdref)


# --------------------------------------------------------------------------- file names


def chunk_filename(kind: str, pointing: str, seq: int) -> str:
    """``<kind>_<pointing>_<seq>.fits`` with a zero-padded sequence number."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    if not POINTING_ID.fullmatch(pointing):
        raise ValueError(f"pointing id {pointing!r} must be 12 letters or digits")
    if not 0 <= int(seq) < 10**9:
        raise ValueError(f"sequence number {seq!r} must be in 0..999999999")
    return f"{kind}_{pointing}_{int(seq):06d}.fits"


def parse_chunk_filename(name: str) -> tuple[str, str, int]:
    """Split a chunk file name into (kind, pointing, seq); refuse paths and odd names."""
    if not CHUNK_NAME.fullmatch(name):
        raise TelemetryError(
            repr(name),
            "file name",
            "is not <kind>_<pointing>_<seq>.fits (kind one of "
            f"{', '.join(KINDS)}, pointing 12 letters/digits, seq digits, no directories)",
            "rename the file, e.g. " + chunk_filename("acs", "025600010010", 1),
        )
    match = CHUNK_NAME.fullmatch(name)
    assert match is not None
    return match["kind"], match["pointing"], int(match["seq"])


def data_order(name: str) -> tuple:
    """Sort key putting chunk files in data order: by pointing, then sequence number, then
    kind (a pointing's opening record right after its first data chunks). Names that are
    not chunk names sort last, by name. A batch of files handled in this order gives the
    stream detectors their data in time order and a burst's localization its attitude
    before the rest of the pointing (in name order, every ``pointing_*`` record of a
    backlog would come after all its ``acs_``/``isgri_`` data)."""
    try:
        kind, pointing, seq = parse_chunk_filename(name)
    except TelemetryError:
        return (1, name)
    return (0, pointing, seq, KINDS.index(kind) if kind in KINDS else len(KINDS), name)


# --------------------------------------------------------------------------- reading


def read_chunk(
    source: Path | str | bytes | bytearray | memoryview,
    name: str | None = None,
    *,
    max_bytes: int = MAX_CHUNK_BYTES,
    sha256: str | None = None,
) -> Chunk:
    """Read and validate one telemetry chunk from a path or from bytes (an MQTT payload).

    ``name`` is the file name the bytes arrived under (defaults to the path's name); when
    given, it must follow the chunk pattern and agree with the file's kind and ``POINTING``.
    Raises :class:`TelemetryError` for anything that is not a well-formed chunk.
    Pass ``sha256`` when the caller has already hashed the bytes (e.g. to skip duplicates).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<payload>"
        if len(source) > max_bytes:
            raise _too_big(label, len(source), max_bytes)
        data = bytes(source)
    else:
        path = Path(source)
        label = str(path)
        if name is None:
            name = path.name
        data = _read_file(path, label, max_bytes)
    expect = parse_chunk_filename(name) if name is not None else None
    try:
        return _parse_hashed(data, label, expect, sha256)
    except TelemetryError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # a malformation no specific check names: still a clean, quarantinable error
        raise TelemetryError(
            label, "file", f"is malformed ({type(exc).__name__}: {exc})", "rewrite the file"
        ) from exc


def _parse_hashed(
    data: bytes, label: str, expect: tuple[str, str, int] | None, sha256: str | None
) -> Chunk:
    if sha256 is not None:
        return _parse(data, label, expect, sha256)
    if len(data) < _THREADED_HASH_BYTES:
        return _parse(data, label, expect, hashlib.sha256(data).hexdigest())
    # hashlib releases the GIL: hash on a second core while this one parses and validates.
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
        try:
            return _parse(data, label, expect, digest)
        finally:
            digest.cancel()


def _too_big(label: str, size: int, limit: int) -> TelemetryError:
    return TelemetryError(
        label,
        "file size",
        f"{size} bytes exceeds the {limit}-byte limit for one chunk",
        "split the telemetry into chunks of a few seconds (or raise max_bytes)",
    )


def _read_file(path: Path, label: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise _too_big(label, size, max_bytes)
            data = fh.read()
    except OSError as exc:
        raise TelemetryError(label, "file", f"cannot be read ({exc})", "check the path") from exc
    check_magic(data[:80], label)
    return data


def _header_dict(*headers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for header in headers:
        merged.update(header)
    return merged


def _parse(
    data: bytes, label: str, expect: tuple[str, str, int] | None, sha: str | Future[str]
) -> Chunk:
    hdus = walk_hdus(data, label)
    by_ext = {h.extname: h for h in hdus[1:]}
    if expect is not None:
        kind = expect[0]
        if EXTENSIONS[kind] not in by_ext:
            found = ", ".join(sorted(k for k in by_ext if k)) or "none"
            raise TelemetryError(
                label,
                "extension",
                f"a {kind!r} chunk needs a {EXTENSIONS[kind]!r} table; found: {found}",
                f"write the table with EXTNAME='{EXTENSIONS[kind]}' or rename the file",
            )
    else:
        kinds = [k for k in KINDS if EXTENSIONS[k] in by_ext]
        if len(kinds) != 1:
            raise TelemetryError(
                label,
                "extension",
                f"need exactly one of {', '.join(EXTENSIONS.values())}; found {sorted(by_ext)}",
                "write one telemetry table per file",
            )
        kind = kinds[0]
    ext = EXTENSIONS[kind]
    hdu = by_ext[ext]
    header = _header_dict(hdus[0].header, hdu.header)
    columns = table_columns(hdu, data, label)
    _check_columns(kind, columns, label, ext)

    pointing = _check_pointing(header, label, expect)
    mjdref = _mjdref(header, label)
    timesys = str(header.get("TIMESYS", "")).strip().upper()
    if timesys != "TT":
        raise TelemetryError(
            label,
            "TIMESYS",
            f"is {timesys or 'missing'!r}, telemetry must be TT",
            "set TIMESYS='TT'",
        )
    unit = str(header.get("TIMEUNIT", "s")).strip()
    if unit != "s":
        raise TelemetryError(
            label, "TIMEUNIT", f"is {unit!r}", "write times in seconds (TIMEUNIT='s')"
        )
    timezero = _finite_key(header, "TIMEZERO", label, default=0.0)
    tstart = _finite_key(header, "TSTART", label)
    tstop = _finite_key(header, "TSTOP", label)
    if tstop < tstart:
        raise TelemetryError(
            label, "TSTOP", f"{tstop} is before TSTART {tstart}", "fix TSTART/TSTOP"
        )
    if kind != "pointing":
        if timezero:
            columns["TIME"] += timezero
        _check_times(columns["TIME"], tstart, tstop, label, ext, header, kind)
    else:
        _check_pointing_table(columns, label, ext)
    instrument = str(header.get("INSTRUME", "")).strip()
    if not instrument:
        raise TelemetryError(
            label, "INSTRUME", "is missing", f"set INSTRUME (e.g. '{INSTRUMENTS[kind]}')"
        )
    return Chunk(
        kind=kind,
        pointing=pointing,
        instrument=instrument,
        name=label,
        sha256=sha if isinstance(sha, str) else sha.result(),
        header=header,
        columns=columns,
        tstart=tstart,
        tstop=tstop,
        mjdref=mjdref,
        timezero=timezero,
    )


def _check_columns(kind: str, columns: dict[str, np.ndarray], label: str, ext: str) -> None:
    for name, (accepted, canonical) in REQUIRED[kind].items():
        if name not in columns:
            raise TelemetryError(
                label,
                f"{ext} column {name}",
                f"is missing (columns present: {', '.join(columns) or 'none'})",
                f"add the column; a {kind!r} table needs {', '.join(REQUIRED[kind])}",
            )
        col = columns[name]
        if col.dtype.kind not in accepted or col.ndim != 1:
            raise TelemetryError(
                label,
                f"{ext} column {name}",
                f"has type {col.dtype}{'' if col.ndim == 1 else f' x {col.shape[1:]}'}",
                f"write it as a scalar {np.dtype(canonical)} column",
            )
        if name == "TIME" and col.dtype.itemsize < 8:
            raise TelemetryError(
                label,
                f"{ext} column TIME",
                f"is {col.dtype}: too coarse for mission-elapsed seconds",
                "write TIME as 64-bit float (TFORM 'D')",
            )
        if accepted == _INT:
            info = np.iinfo(canonical)
            if len(col) and (col.min() < info.min or col.max() > info.max):
                raise TelemetryError(
                    label, f"{ext} column {name}", f"values overflow {canonical}", "check the data"
                )
        if col.dtype != np.dtype(canonical) and col.dtype.kind != "U":
            columns[name] = col.astype(canonical)
    if kind == "isgri":
        for axis in ("DETY", "DETZ"):
            col = columns[axis]
            if len(col) and (col.min() < 0 or col.max() >= DETECTOR_PIXELS):
                bad = int(np.count_nonzero((col < 0) | (col >= DETECTOR_PIXELS)))
                raise TelemetryError(
                    label,
                    f"{ext} column {axis}",
                    f"{bad} values outside 0-{DETECTOR_PIXELS - 1}",
                    "drop events with invalid detector coordinates before sending",
                )
    if kind == "hk":
        for name, col in columns.items():
            if col.dtype.kind not in "fiub":
                raise TelemetryError(
                    label, f"{ext} column {name}", f"has type {col.dtype}", "make it numeric"
                )


def _check_pointing(header: dict[str, Any], label: str, expect: tuple[str, str, int] | None) -> str:
    pointing = str(header.get("POINTING", "")).strip()
    if not POINTING_ID.fullmatch(pointing):
        raise TelemetryError(
            label,
            "POINTING",
            f"keyword is {pointing or 'missing'!r}, not a 12-character id of letters/digits",
            "set POINTING to the pointing id, e.g. '025600010010'",
        )
    if expect is not None and expect[1] != pointing:
        raise TelemetryError(
            label,
            "POINTING",
            f"keyword {pointing!r} does not match the file name's pointing {expect[1]!r}",
            "name the file after the pointing it holds",
        )
    return pointing


def _mjdref(header: dict[str, Any], label: str) -> float:
    if "MJDREFI" in header:
        value = header_number(header, "MJDREFI", label, "header") + header_number(
            header, "MJDREFF", label, "header", 0.0
        )
    elif "MJDREF" in header:
        value = header_number(header, "MJDREF", label, "header")
    else:
        raise TelemetryError(
            label,
            "MJDREF",
            "neither MJDREF nor MJDREFI/MJDREFF is set",
            "set MJDREFI=51544, MJDREFF=0",
        )
    return float(value)


def _finite_key(
    header: Mapping[str, Any], key: str, label: str, default: float | None = None
) -> float:
    raw = header.get(key, default)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise TelemetryError(
            label, key, f"is {raw!r}, not a finite number", f"set {key} in seconds"
        )
    return value


def _check_times(
    time: np.ndarray, tstart: float, tstop: float, label: str, ext: str, header: dict, kind: str
) -> None:
    if not len(time):
        return
    if not (np.isfinite(time.min()) and np.isfinite(time.max())):  # NaN propagates to min
        finite = np.isfinite(time)
        raise TelemetryError(
            label,
            f"{ext} column TIME",
            f"{int(np.count_nonzero(~finite))} non-finite values "
            f"(first at row {int(np.argmin(finite)) + 1})",
            "drop rows with NaN/inf times before sending",
        )
    first = first_decrease(time)
    if first is not None:
        raise TelemetryError(
            label,
            f"{ext} column TIME",
            f"decreases at row {first + 2} ({time[first]!r} -> {time[first + 1]!r})",
            "sort the rows by TIME",
        )
    width = (
        float(header_number(header, "TIMEDEL", label, "header", ACS_TIMEDEL))
        if kind == "acs"
        else 0.0
    )
    slack = 1e-4  # s: float64 rounding of ~1e9 s is ~1e-7 s
    if time[0] < tstart - slack or time[-1] + width > tstop + slack:
        raise TelemetryError(
            label,
            f"{ext} column TIME",
            f"spans {time[0]!r}..{time[-1] + width!r}, outside TSTART..TSTOP "
            f"({tstart!r}..{tstop!r})",
            "set TSTART/TSTOP to cover the data (TIME + TIMEZERO)",
        )


def first_decrease(values: np.ndarray, block: int = 1 << 16) -> int | None:
    """Index i of the first ``values[i + 1] < values[i]``, or None; no big temporaries."""
    buf = np.empty(min(max(len(values) - 1, 0), block), dtype=bool)
    for start in range(0, len(values) - 1, block):
        stop = min(start + block, len(values) - 1)
        out = buf[: stop - start]
        np.less(values[start + 1 : stop + 1], values[start:stop], out=out)
        if out.any():
            return start + int(out.argmax())
    return None


def _check_pointing_table(columns: dict[str, np.ndarray], label: str, ext: str) -> None:
    for name in ("TSTART", "TSTOP", "RA", "DEC", "ROLL"):
        if not np.isfinite(columns[name]).all():
            raise TelemetryError(
                label, f"{ext} column {name}", "has non-finite values", "fix the attitude"
            )
    if np.any(columns["TSTOP"] < columns["TSTART"]):
        raise TelemetryError(label, f"{ext} column TSTOP", "is before TSTART", "fix the interval")
    if np.any(np.abs(columns["DEC"]) > 90):
        raise TelemetryError(label, f"{ext} column DEC", "outside -90..90 deg", "fix the attitude")
    for pid in columns["POINTING"]:
        if not POINTING_ID.fullmatch(str(pid)):
            raise TelemetryError(
                label, f"{ext} column POINTING", f"{pid!r} is not a 12-character id", "fix the id"
            )


# --------------------------------------------------------------------------- writing


def _canonical_columns(kind: str, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    required = REQUIRED[kind]
    missing = [name for name in required if name not in columns]
    if missing:
        raise ValueError(f"a {kind!r} chunk needs columns {list(required)}; missing {missing}")
    out = {}
    for name, values in columns.items():
        dtype = required.get(name, (None, None))[1]
        arr = np.asarray(values)
        if dtype == "U12":
            out[name.upper()] = arr.astype("S12")
            continue
        if dtype is None:  # housekeeping and extra columns: keep small ints, else f8/i8
            keep = arr.dtype.str[1:] in ("i2", "i4", "i8", "u1", "b1")
            dtype = arr.dtype if keep else ("i8" if arr.dtype.kind in "iu" else "f8")
        out[name.upper()] = arr.astype(dtype)
    return out


def chunk_bytes(
    kind: str,
    pointing: str,
    columns: Mapping[str, Any],
    tstart: float,
    tstop: float,
    **header: Any,
) -> bytes:
    """The FITS bytes of a chunk (what ``write_chunk`` writes and MQTT publishers send).

    Extra keyword arguments become header keywords of the table (upper-cased), e.g.
    ``INSTRUME="SPI-ACS"`` or ``TIMEZERO=...``. Deterministic: same inputs, same bytes.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    if not POINTING_ID.fullmatch(pointing):
        raise ValueError(f"pointing id {pointing!r} must be 12 letters or digits")
    cards: dict[str, Any] = {
        "TELESCOP": "INTEGRAL",
        "INSTRUME": INSTRUMENTS[kind],
        "POINTING": pointing,
        "TIMESYS": "TT",
        "TIMEREF": "LOCAL",
        "TIMEUNIT": "s",
        "MJDREFI": int(MJDREF_IJD),
        "MJDREFF": 0.0,
        "TIMEZERO": 0.0,
        "TSTART": float(tstart),
        "TSTOP": float(tstop),
    }
    if kind == "acs":
        cards.update(HDUCLASS="OGIP", HDUCLAS1="LIGHTCURVE", TIMEDEL=ACS_TIMEDEL)
    elif kind == "isgri":
        cards.update(HDUCLASS="OGIP", HDUCLAS1="EVENTS")
    cards.update({key.upper(): value for key, value in header.items()})
    primary = {key: cards[key] for key in ("TELESCOP", "INSTRUME", "POINTING")}
    return table_bytes(EXTENSIONS[kind], _canonical_columns(kind, columns), cards, primary)


def write_chunk(
    path: Path | str,
    kind: str,
    pointing: str,
    columns: Mapping[str, Any],
    tstart: float,
    tstop: float,
    *,
    fsync: bool = True,
    **header: Any,
) -> Path:
    """Write a chunk atomically to ``path`` (temp name in the same dir, fsync, rename)."""
    data = chunk_bytes(kind, pointing, columns, tstart, tstop, **header)
    return atomic_write(Path(path), data, fsync=fsync)


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> Path:
    """Publish ``data`` at ``path`` so a reader sees either nothing or the whole file.

    The rename alone gives readers the all-or-nothing view; ``fsync`` (file and directory)
    adds durability across a power cut, at a few ms per file.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)  # hidden and *.tmp: watchers skip it
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    if not fsync:
        return path
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
