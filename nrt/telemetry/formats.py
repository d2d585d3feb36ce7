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
directory (``.<final name>.<pid>.tmp``, which never matches the chunk pattern), are fsynced,
and are renamed into place, so a watcher never sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

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
#: SPI-ACS native bin width (s).
ACS_TIMEDEL = 0.05
#: ISGRI detector pixels per side.
DETECTOR_PIXELS = 128
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

_BLOCK = 2880
_CARD = 80
_MAX_HEADER_BLOCKS = 200  # 200 blocks = 7200 cards: far beyond any real header
_MAX_HDUS = 16
_SKIP_KEYS = frozenset({"COMMENT", "HISTORY", ""})


class TelemetryError(ValueError):
    """A telemetry file that cannot be used; says which file, what is wrong and how to fix it."""

    def __init__(self, file: str, field: str, problem: str, fix: str) -> None:
        self.file, self.field, self.problem, self.fix = file, field, problem, fix
        super().__init__(f"{file}: {field}: {problem}; fix: {fix}")

    @property
    def reason(self) -> str:
        """One line for a quarantine ``.reason`` file."""
        return str(self)


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
        from astropy.time import Time

        return Time(
            self.mjdref, np.asarray(seconds, dtype=float) / 86400.0, format="mjd", scale="tt"
        )


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


# --------------------------------------------------------------------------- reading


def read_chunk(
    source: Path | str | bytes | bytearray | memoryview,
    name: str | None = None,
    *,
    max_bytes: int = MAX_CHUNK_BYTES,
) -> Chunk:
    """Read and validate one telemetry chunk from a path or from bytes (an MQTT payload).

    ``name`` is the file name the bytes arrived under (defaults to the path's name); when
    given, it must follow the chunk pattern and agree with the file's kind and ``POINTING``.
    Raises :class:`TelemetryError` for anything that is not a well-formed chunk.
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
    return _parse(data, label, expect)


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
    _check_magic(data[:_CARD], label)
    return data


def _check_magic(head: bytes, label: str) -> None:
    if not head.startswith(b"SIMPLE  =") or head[29:30] != b"T":
        shown = head[:16].decode("latin-1").encode("unicode_escape").decode()
        raise TelemetryError(
            label,
            "payload",
            f"is not FITS (starts with {shown!r}, expected 'SIMPLE  =  ... T')",
            "send the FITS file's bytes unchanged (see nrt.telemetry.formats.write_chunk)",
        )


@dataclass(frozen=True)
class _HDU:
    header: fits.Header
    data_offset: int
    data_size: int


def _walk_hdus(data: bytes, label: str) -> list[_HDU]:
    """Parse every header and locate every data unit, checking nothing is cut off."""
    _check_magic(data[:_CARD], label)
    hdus: list[_HDU] = []
    offset = 0
    while offset < len(data) and len(hdus) < _MAX_HDUS:
        header, data_offset = _read_header(data, offset, label, len(hdus))
        size = _data_size(header, label, len(hdus))
        if data_offset + size > len(data):
            raise TelemetryError(
                label,
                f"HDU {len(hdus)} data",
                f"truncated: header promises {size} bytes, only {len(data) - data_offset} present",
                "the transfer was cut short: send the complete file again",
            )
        hdus.append(_HDU(header, data_offset, size))
        offset = data_offset + -(-size // _BLOCK) * _BLOCK
    return hdus


def _read_header(data: bytes, offset: int, label: str, index: int) -> tuple[fits.Header, int]:
    for block in range(_MAX_HEADER_BLOCKS):
        start = offset + block * _BLOCK
        chunk = data[start : start + _BLOCK]
        if len(chunk) < _BLOCK:
            raise TelemetryError(
                label,
                f"HDU {index} header",
                "truncated: the header ends before its END card",
                "the transfer was cut short: send the complete file again",
            )
        cards = [chunk[i : i + _CARD] for i in range(0, _BLOCK, _CARD)]
        if any(card.rstrip() == b"END" for card in cards):
            text = data[offset : start + _BLOCK].decode("ascii", errors="replace")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    header = fits.Header.fromstring(text)
            except Exception as exc:
                raise TelemetryError(
                    label, f"HDU {index} header", f"is not valid FITS ({exc})", "rewrite the file"
                ) from exc
            return header, start + _BLOCK
    raise TelemetryError(
        label,
        f"HDU {index} header",
        f"no END card within {_MAX_HEADER_BLOCKS} blocks",
        "this is not a FITS header: send a FITS file",
    )


def _data_size(header: fits.Header, label: str, index: int) -> int:
    try:
        naxis = int(header.get("NAXIS", 0))
        if naxis == 0:
            return 0
        bitpix = abs(int(header["BITPIX"]))
        count = math.prod(int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1))
        pcount, gcount = int(header.get("PCOUNT", 0)), int(header.get("GCOUNT", 1))
    except (KeyError, ValueError, TypeError) as exc:
        raise TelemetryError(
            label, f"HDU {index} header", f"bad structural keyword ({exc})", "rewrite the file"
        ) from exc
    if min(naxis, bitpix, count, pcount, gcount) < 0:
        raise TelemetryError(
            label, f"HDU {index} header", "negative NAXISn/PCOUNT/GCOUNT", "rewrite the file"
        )
    return bitpix // 8 * gcount * (pcount + count)


_TFORM = re.compile(r"\s*(\d*)([LXBIJKAEDCMPQ])")
_CODES = {"L": "i1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_CODES.update({"C": ">c8", "M": ">c16"})
#: (TFORM code, TZEROn) pairs that mean "unsigned" (or signed bytes), not scaling.
_UNSIGNED = {("I", 32768): "u2", ("J", 2**31): "u4", ("K", 2**63): "u8", ("B", -128): "i1"}


def _table_columns(hdu: _HDU, data: bytes, label: str, ext: str) -> dict[str, np.ndarray]:
    """View a BINTABLE with numpy and return native-endian copies of its columns."""
    h = hdu.header
    if h.get("XTENSION", "").strip() != "BINTABLE":
        raise TelemetryError(
            label,
            ext,
            f"is a {h.get('XTENSION')!r} extension, not BINTABLE",
            "write a binary table",
        )
    names, formats, offsets, kinds = [], [], [], []
    pos = 0
    for i in range(1, int(h.get("TFIELDS", 0)) + 1):
        tform = str(h.get(f"TFORM{i}", ""))
        match = _TFORM.match(tform)
        name = str(h.get(f"TTYPE{i}", f"COL{i}")).strip().upper()
        if not match or match[2] in "PQX":
            raise TelemetryError(
                label,
                f"{ext} column {name}",
                f"format TFORM{i}={tform!r} is not supported",
                "use fixed-width numeric or string columns",
            )
        repeat = int(match[1] or 1)
        code = match[2]
        if code == "A":
            dtype = np.dtype(f"S{repeat}")
            width = repeat
        else:
            base = np.dtype(_CODES[code])
            dtype = base if repeat == 1 else np.dtype((base, (repeat,)))
            width = base.itemsize * repeat
        if repeat:
            names.append(name)
            formats.append(dtype)
            offsets.append(pos)
            kinds.append((code, i))
        pos += width
    rowlen, nrows = int(h["NAXIS1"]), int(h["NAXIS2"])
    if pos != rowlen:
        raise TelemetryError(
            label,
            ext,
            f"columns add up to {pos} bytes per row but NAXIS1={rowlen}",
            "rewrite the file",
        )
    if len(set(names)) != len(names):
        raise TelemetryError(
            label, ext, "duplicate column names", "give each column its own TTYPEn"
        )
    struct = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": rowlen})
    rows = np.frombuffer(data, dtype=struct, count=nrows, offset=hdu.data_offset)
    columns: dict[str, np.ndarray] = {}
    for name, (code, i) in zip(names, kinds, strict=True):
        columns[name] = _decode(rows[name], code, h, i)
    return columns


def _decode(raw: np.ndarray, code: str, h: fits.Header, i: int) -> np.ndarray:
    """Native-endian copy of one column, with the FITS unsigned/scaling conventions applied."""
    if code == "A":
        return np.char.rstrip(raw.astype("U"))
    if code == "L":
        return raw == ord("T")
    native = raw.astype(raw.dtype.newbyteorder("="))
    zero, scale = h.get(f"TZERO{i}", 0), h.get(f"TSCAL{i}", 1)
    target = _UNSIGNED.get((code, zero)) if scale == 1 else None
    if target:  # flipping the sign bit is adding 2**(bits-1) modulo 2**bits
        bits = native.dtype.itemsize * 8
        flip = np.array(1 << (bits - 1), dtype=f"u{bits // 8}")
        return (native.view(f"u{bits // 8}") ^ flip).view(target)
    if zero != 0 or scale != 1:
        return native * float(scale) + float(zero)
    return native


def _header_dict(*headers: fits.Header) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for header in headers:
        for key, value in header.items():
            if key not in _SKIP_KEYS:
                merged[key] = value
    return merged


def _parse(data: bytes, label: str, expect: tuple[str, str, int] | None) -> Chunk:
    sha = hashlib.sha256(data).hexdigest()
    hdus = _walk_hdus(data, label)
    by_ext = {str(h.header.get("EXTNAME", "")).strip().upper(): h for h in hdus[1:]}
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
    columns = _table_columns(hdu, data, label, ext)
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
        sha256=sha,
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
        value = float(header["MJDREFI"]) + float(header.get("MJDREFF", 0.0))
    elif "MJDREF" in header:
        value = float(header["MJDREF"])
    else:
        raise TelemetryError(
            label,
            "MJDREF",
            "neither MJDREF nor MJDREFI/MJDREFF is set",
            "set MJDREFI=51544, MJDREFF=0",
        )
    if not math.isfinite(value):
        raise TelemetryError(label, "MJDREF", f"is {value}", "set MJDREFI=51544, MJDREFF=0")
    return value


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
    finite = np.isfinite(time)
    if not finite.all():
        first = int(np.argmin(finite))
        raise TelemetryError(
            label,
            f"{ext} column TIME",
            f"{int(np.count_nonzero(~finite))} non-finite values (first at row {first + 1})",
            "drop rows with NaN/inf times before sending",
        )
    steps = np.diff(time)
    if len(steps) and steps.min() < 0:
        first = int(np.argmax(steps < 0))
        raise TelemetryError(
            label,
            f"{ext} column TIME",
            f"decreases at row {first + 2} ({time[first]!r} -> {time[first + 1]!r})",
            "sort the rows by TIME",
        )
    width = float(header.get("TIMEDEL", ACS_TIMEDEL)) if kind == "acs" else 0.0
    slack = 1e-6 * max(1.0, abs(tstop))
    if time[0] < tstart - slack or time[-1] + width > tstop + slack:
        raise TelemetryError(
            label,
            f"{ext} column TIME",
            f"spans {time[0]!r}..{time[-1] + width!r}, outside TSTART..TSTOP "
            f"({tstart!r}..{tstop!r})",
            "set TSTART/TSTOP to cover the data (TIME + TIMEZERO)",
        )


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


def _canonical_columns(kind: str, columns: Mapping[str, Any]) -> list[fits.Column]:
    required = REQUIRED[kind]
    missing = [name for name in required if name not in columns]
    if missing:
        raise ValueError(f"a {kind!r} chunk needs columns {list(required)}; missing {missing}")
    out = []
    for name, values in columns.items():
        dtype = required.get(name, (None, None))[1]
        arr = np.asarray(values)
        if dtype == "U12":
            out.append(fits.Column(name=name, format="12A", array=arr.astype("S12")))
            continue
        if dtype is None:  # housekeeping and extra columns: keep small ints, else f8/i8
            keep = arr.dtype.str[1:] in ("i2", "i4", "i8", "u1", "b1")
            dtype = arr.dtype if keep else ("i8" if arr.dtype.kind in "iu" else "f8")
        arr = arr.astype(dtype)
        out.append(fits.Column(name=name, format=_fits_format(arr.dtype), array=arr))
    return out


def _fits_format(dtype: np.dtype) -> str:
    table = {"f8": "D", "f4": "E", "i2": "I", "i4": "J", "i8": "K", "u1": "B", "b1": "L"}
    return table[dtype.str[1:]]


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
    table = fits.BinTableHDU.from_columns(_canonical_columns(kind, columns), name=EXTENSIONS[kind])
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
    primary = fits.PrimaryHDU()
    for key in ("TELESCOP", "INSTRUME", "POINTING"):
        primary.header[key] = cards[key]
    for key, value in cards.items():
        table.header[key] = value
    buf = io.BytesIO()
    fits.HDUList([primary, table]).writeto(buf)
    return buf.getvalue()


def write_chunk(
    path: Path | str,
    kind: str,
    pointing: str,
    columns: Mapping[str, Any],
    tstart: float,
    tstop: float,
    **header: Any,
) -> Path:
    """Write a chunk atomically to ``path`` (temp name in the same dir, fsync, rename)."""
    return atomic_write(Path(path), chunk_bytes(kind, pointing, columns, tstart, tstop, **header))


def atomic_write(path: Path, data: bytes) -> Path:
    """Publish ``data`` at ``path`` so a reader sees either nothing or the whole file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
