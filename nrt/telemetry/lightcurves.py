"""Readers for other people's light curves (used by ``nrt detect``).

Accepted inputs:

* OGIP FITS light curves (optionally gzipped): a table with ``TIME`` and ``COUNTS``,
  ``TOTCOUNTS`` or ``RATE`` (count/s, multiplied by the bin width), in that order of
  preference. ``RATE`` is refused when it is negative somewhere (it has been background
  subtracted: Swift/BAT's mask-weighted rates) and for BAT files, whose raw counts are
  ``TOTCOUNTS``. Vector (multi-channel) columns are summed.
* Text files with two or three columns: time, counts or rate, [error]; whitespace or comma
  separated, ``#`` comments. Comment lines ``# KEY = value`` may set ``MJDREF``, ``TIMEZERO``,
  ``TIMESYS``, ``TIMEDEL``, ``INSTRUME``, ``TRIGTIME`` and ``COLUMNS`` (e.g.
  ``# COLUMNS = time rate error``). Without ``COLUMNS``, integer-valued second columns are
  counts and anything else is a rate.

Bins: ``TIME + TIMEZERO`` is the bin start (``TIMEPIXR`` is honoured when present). The width
is the ``TIMEDEL`` column if there is one, else ``TIMEDEL`` when the spacing of ``TIME`` agrees
with it, else the spacing itself (uneven bins; ``TIMEDEL`` is then only nominal): a spacing
more than 1.5 nominal widths is a gap, and that bin keeps the nominal width. The last bin is
nominal wide. ``FRACEXP`` scales the exposure. GTIs come
from a ``STDGTI``/``GTI`` extension (whole span if there is none).

Absolute time: :meth:`LightCurve.to_time` gives TT from ``MJDREF`` (or ``MJDREFI + MJDREFF``).
Swift files written before clock correction (``CLOCKAPP = F`` with ``UTCFINIT``) count
spacecraft-clock seconds: there the correction ``UTCF`` plus the leap seconds since 2001 is
added (``clock_correction``), which puts BAT triggers at the times GCN circulars quote.
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nrt.telemetry.errors import TelemetryError
from nrt.telemetry.fitsio import HDU, header_number, table_columns, walk_hdus

MAX_BYTES = 1024**3
_GAP_FACTOR = 1.5
_TEXT_KEYS = ("MJDREF", "TIMEZERO", "TIMESYS", "TIMEDEL", "INSTRUME", "TRIGTIME", "COLUMNS")


@dataclass(frozen=True, eq=False)
class LightCurve:
    """A binned light curve in the file's own seconds (``TIMEZERO`` applied)."""

    time: np.ndarray  # bin starts (s since mjdref)
    width: np.ndarray  # bin widths (s)
    counts: np.ndarray  # counts per bin (float)
    exposure: np.ndarray  # width * FRACEXP (s)
    gti: np.ndarray  # (N, 2) good-time intervals, same seconds
    mjdref: float
    timesys: str
    instrument: str
    band: tuple[float, float] | None  # keV
    trigger_time: float | None  # same seconds, e.g. BAT TRIGTIME
    source: str
    clock_correction: float = 0.0  # s added before conversion to absolute time

    @property
    def rate(self) -> np.ndarray:
        """Counts per second of exposure (NaN where there is none)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.exposure > 0, self.counts / self.exposure, np.nan)

    def to_time(self, seconds: Any):
        """File seconds as an astropy ``Time`` in the TT scale."""
        from astropy.time import Time

        scale = self.timesys.lower() if self.timesys.lower() in Time.SCALES else "tt"
        offset = (np.asarray(seconds, dtype=float) + self.clock_correction) / 86400.0
        return Time(self.mjdref, offset, format="mjd", scale=scale).tt


def read_lightcurve(path: Path | str) -> LightCurve:
    """Read an OGIP FITS or a text light curve; raises :class:`TelemetryError` on bad input."""
    path = Path(path)
    label = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TelemetryError(
                label, "file size", f"{size} bytes is more than {MAX_BYTES}", "split the file"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise TelemetryError(label, "file", f"cannot be read ({exc})", "check the path") from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise TelemetryError(label, "gzip", f"is damaged ({exc})", "send it again") from exc
    try:
        if data.startswith(b"SIMPLE  ="):
            return _read_fits(data, label)
        return _read_text(data, label)
    except TelemetryError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # a malformation no specific check names: still a clean error naming the file
        raise TelemetryError(
            label, "file", f"is malformed ({type(exc).__name__}: {exc})", "fix or re-export it"
        ) from exc


# --------------------------------------------------------------------------- FITS


def _read_fits(data: bytes, label: str) -> LightCurve:
    hdus = walk_hdus(data, label)
    table = _find_table(hdus, label)
    header = {**hdus[0].header, **table.header}
    columns = table_columns(table, data, label)
    ext = table.extname or "table"
    timezero = _number(header, "TIMEZERO", label, 0.0)
    raw_time = columns["TIME"].astype(float)
    keep = _finite_rows(columns, raw_time, label, ext)
    time = raw_time[keep] + timezero
    width = _widths(time, columns, keep, header, label)
    pixr = _number(header, "TIMEPIXR", label, 0.0)
    start = time - pixr * width
    counts = _fits_counts(columns, keep, width, header, label, ext)
    fracexp = columns["FRACEXP"][keep].astype(float) if "FRACEXP" in columns else 1.0
    exposure = width * np.clip(fracexp, 0.0, 1.0)
    gti = _fits_gti(hdus, data, label)
    # BAT: the primary header holds the trigger time of the automatic target; the tables may
    # carry a later, refined TRIGTIME. The primary one is what notices and circulars quote.
    trig = hdus[0].header.get("TRIGTIME", header.get("TRIGTIME"))
    return LightCurve(
        time=start,
        width=width,
        counts=counts,
        exposure=exposure,
        gti=gti if gti is not None else _span(start, width),
        mjdref=_mjdref(header, label),
        timesys=str(header.get("TIMESYS", "TT")).strip().upper() or "TT",
        instrument=_instrument(header),
        band=_fits_band(hdus, data, header, label),
        trigger_time=float(trig) if isinstance(trig, (int, float)) else None,
        source=label,
        clock_correction=_clock_correction(header, label),
    )


_COUNT_COLUMNS = ("COUNTS", "TOTCOUNTS", "RATE")


def _find_table(hdus: list[HDU], label: str) -> HDU:
    tables = [h for h in hdus[1:] if str(h.header.get("XTENSION", "")).strip() == "BINTABLE"]

    def names(h: HDU) -> set[str]:
        where = h.extname or "table"
        count = header_number(h.header, "TFIELDS", label, where, 0, integer=True)
        if not 0 <= count <= 999:  # TFIELDS = 1E308 would loop for ever
            raise TelemetryError(label, f"{where} TFIELDS", f"is {count}", "use 0-999 columns")
        return {str(h.header.get(f"TTYPE{i}", "")).strip().upper() for i in range(1, count + 1)}

    usable = [h for h in tables if "TIME" in names(h) and names(h) & set(_COUNT_COLUMNS)]
    for rule in (
        lambda h: h.extname in ("RATE", "LIGHTCURVE", "COUNTS"),
        lambda h: str(h.header.get("HDUCLAS1", "")).strip().upper() == "LIGHTCURVE",
        lambda h: True,
    ):
        found = [h for h in usable if rule(h)]
        if found:
            return found[0]
    described = ", ".join(f"{h.extname or '?'}({', '.join(sorted(names(h)))})" for h in tables)
    raise TelemetryError(
        label,
        "light curve table",
        f"no table with TIME and one of {', '.join(_COUNT_COLUMNS)} (tables: {described or 'none'})",
        "write an OGIP light curve (EXTNAME='RATE', columns TIME and COUNTS or RATE)",
    )


def _finite_rows(columns: dict, time: np.ndarray, label: str, ext: str) -> np.ndarray:
    if not len(time):
        raise TelemetryError(label, f"{ext} column TIME", "has no rows", "send a non-empty file")
    if not np.isfinite(time).all():
        raise TelemetryError(
            label, f"{ext} column TIME", "has NaN/inf values", "drop rows without a time"
        )
    if np.any(np.diff(time) <= 0):
        row = int(np.argmax(np.diff(time) <= 0)) + 2
        raise TelemetryError(
            label, f"{ext} column TIME", f"is not increasing at row {row}", "sort the bins by TIME"
        )
    keep = np.ones(len(time), dtype=bool)
    for name in _COUNT_COLUMNS:  # bins with NaN values are missing data, not errors
        if name in columns:
            values = columns[name].astype(float)
            keep &= np.isfinite(values if values.ndim == 1 else values.sum(axis=1))
    if not keep.any():
        raise TelemetryError(label, ext, "every bin is NaN", "send a light curve with data")
    return keep


def _widths(
    time: np.ndarray, columns: dict, keep: np.ndarray, header: dict, label: str
) -> np.ndarray:
    if "TIMEDEL" in columns:
        return columns["TIMEDEL"][keep].astype(float)
    return bin_widths(time, _number(header, "TIMEDEL", label, None), label)


def bin_widths(start: np.ndarray, timedel: float | None, label: str) -> np.ndarray:
    """Bin widths from the bin starts (see the module docstring for the rules)."""
    steps = np.diff(start)
    if timedel is not None and timedel <= 0:
        raise TelemetryError(label, "TIMEDEL", f"is {timedel}", "set the bin width in seconds")
    if not len(steps):
        if timedel is None:
            raise TelemetryError(
                label, "TIMEDEL", "one bin and no TIMEDEL: width unknown", "set TIMEDEL"
            )
        return np.array([timedel])
    nominal = float(timedel) if timedel is not None else float(np.median(steps))
    gaps = steps > _GAP_FACTOR * nominal
    if timedel is not None and np.allclose(steps[~gaps], timedel, rtol=1e-3, atol=1e-6):
        return np.full(len(start), nominal)  # even bins (maybe with gaps)
    width = np.append(steps, nominal)
    width[:-1][gaps] = nominal
    return width


def _fits_counts(
    columns: dict, keep: np.ndarray, width: np.ndarray, header: dict, label: str, ext: str
) -> np.ndarray:
    def summed(name: str) -> np.ndarray:
        values = columns[name][keep].astype(float)
        return values if values.ndim == 1 else values.sum(axis=1)

    if "COUNTS" in columns:
        return summed("COUNTS")
    if "TOTCOUNTS" in columns:
        return summed("TOTCOUNTS")
    if _instrument(header) == "BAT":
        raise TelemetryError(
            label,
            f"{ext} column RATE",
            "BAT rates are mask-weighted and background-subtracted, not counts; TOTCOUNTS is "
            "missing",
            "make the light curve with batbinevt outunit=COUNTS or keep the TOTCOUNTS column",
        )
    rate = summed("RATE")
    if np.any(rate < 0):
        raise TelemetryError(
            label,
            f"{ext} column RATE",
            f"has {int(np.count_nonzero(rate < 0))} negative values: it is background-subtracted",
            "give raw counts (COUNTS or TOTCOUNTS) or raw rates",
        )
    return rate * width


def _fits_gti(hdus: list[HDU], data: bytes, label: str) -> np.ndarray | None:
    for hdu in hdus[1:]:
        kind = str(hdu.header.get("HDUCLAS1", "")).strip().upper()
        if hdu.extname in ("STDGTI", "GTI") or kind == "GTI":
            cols = table_columns(hdu, data, label)
            if "START" not in cols or "STOP" not in cols:
                raise TelemetryError(
                    label, f"{hdu.extname} table", "lacks START/STOP", "write START and STOP"
                )
            zero = _number(hdu.header, "TIMEZERO", label, 0.0)
            gti = np.column_stack([cols["START"], cols["STOP"]]).astype(float) + zero
            if not np.isfinite(gti).all() or np.any(gti[:, 1] < gti[:, 0]):
                raise TelemetryError(
                    label, f"{hdu.extname} table", "has bad intervals", "fix START/STOP"
                )
            return gti
    return None


def _fits_band(
    hdus: list[HDU], data: bytes, header: dict, label: str
) -> tuple[float, float] | None:
    for hdu in hdus[1:]:
        if hdu.extname == "EBOUNDS":
            cols = table_columns(hdu, data, label)
            if "E_MIN" in cols and "E_MAX" in cols and len(cols["E_MIN"]):
                return float(np.min(cols["E_MIN"])), float(np.max(cols["E_MAX"]))
    for low, high in (("E_MIN", "E_MAX"), ("EMIN", "EMAX"), ("ENERG_LO", "ENERG_HI")):
        if isinstance(header.get(low), (int, float)) and isinstance(header.get(high), (int, float)):
            return float(header[low]), float(header[high])
    return None


def _clock_correction(header: dict, label: str) -> float:
    """Swift: uncorrected spacecraft clock + UTCF + leap seconds since 2001 = TT offset."""
    if header.get("CLOCKAPP") is not False or not isinstance(header.get("UTCFINIT"), (int, float)):
        return 0.0
    if str(header.get("TELESCOP", "")).strip().upper() != "SWIFT":
        return 0.0
    from astropy.time import Time

    when = Time(
        _mjdref(header, label),
        _number(header, "TSTART", label, 0.0) / 86400,
        format="mjd",
        scale="tt",
    )
    tt_minus_utc = (when.tt.jd1 - when.utc.jd1 + when.tt.jd2 - when.utc.jd2) * 86400.0
    leap_since_2001 = round(tt_minus_utc - 64.184)
    return float(header["UTCFINIT"]) + leap_since_2001


def _span(start: np.ndarray, width: np.ndarray) -> np.ndarray:
    return np.array([[start[0], start[-1] + width[-1]]])


def _instrument(header: dict) -> str:
    return str(header.get("INSTRUME", "")).strip().upper() or "UNKNOWN"


def _mjdref(header: dict, label: str) -> float:
    if "MJDREFI" in header or "MJDREFF" in header:
        return _number(header, "MJDREFI", label, 0.0) + _number(header, "MJDREFF", label, 0.0)
    if "MJDREF" in header:
        return _number(header, "MJDREF", label, 0.0)
    raise TelemetryError(
        label, "MJDREF", "neither MJDREF nor MJDREFI/MJDREFF is set", "add MJDREF to the header"
    )


def _number(header: dict, key: str, label: str, default: float | None) -> float:
    raw = header.get(key)
    if raw is None:
        return default  # type: ignore[return-value]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise TelemetryError(label, key, f"is {raw!r}, not a finite number", f"fix {key}")
    return value


# --------------------------------------------------------------------------- text

_DIRECTIVE = re.compile(r"#\s*([A-Za-z_]+)\s*[=:]\s*(.+?)\s*$")


def _read_text(data: bytes, label: str) -> LightCurve:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TelemetryError(
            label, "payload", "is neither FITS nor UTF-8 text", "send a FITS or text light curve"
        ) from exc
    meta: dict[str, str] = {}
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            match = _DIRECTIVE.match(stripped)
            if match and match[1].upper() in _TEXT_KEYS:
                meta[match[1].upper()] = match[2]
            continue
        fields = [f for f in re.split(r"[,\s]+", stripped) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if not rows:  # a header line of column names
                meta.setdefault("COLUMNS", " ".join(fields))
                continue
            raise TelemetryError(
                label, f"line {number}", f"is not numbers: {stripped[:60]!r}", "fix or comment it"
            ) from None
        if len(values) not in (2, 3) or (rows and len(values) != len(rows[0])):
            raise TelemetryError(
                label,
                f"line {number}",
                f"has {len(values)} columns",
                "use 2 or 3 columns (time, counts or rate, [error]) on every line",
            )
        rows.append(values)
    if not rows:
        raise TelemetryError(label, "data", "no rows", "send time and counts/rate columns")
    table = np.array(rows)
    header = {key: _text_value(value) for key, value in meta.items()}
    timezero = _number(header, "TIMEZERO", label, 0.0)
    time = table[:, 0] + timezero
    _finite_rows({"RATE": table[:, 1]}, table[:, 0], label, "text")
    if not np.isfinite(table[:, 1]).all():
        raise TelemetryError(label, "column 2", "has NaN values", "drop those rows")
    width = bin_widths(time, _number(header, "TIMEDEL", label, None), label)
    second = table[:, 1]
    names = str(meta.get("COLUMNS", "")).lower().replace(",", " ").split()
    if len(names) >= 2:
        is_rate = names[1] in ("rate", "rates", "count_rate", "countrate", "cts/s")
    else:
        is_rate = not np.all(second == np.round(second))
    if np.any(second < 0):
        raise TelemetryError(
            label, "column 2", "has negative values", "give raw counts or rates, not net ones"
        )
    counts = second * width if is_rate else second
    trig = header.get("TRIGTIME")
    return LightCurve(
        time=time,
        width=width,
        counts=counts.astype(float),
        exposure=width.copy(),
        gti=_span(time, width),
        mjdref=_number(header, "MJDREF", label, 51544.0),
        timesys=str(header.get("TIMESYS", "TT")).upper(),
        instrument=str(header.get("INSTRUME", "UNKNOWN")).upper(),
        band=None,
        trigger_time=float(trig) if isinstance(trig, (int, float)) else None,
        source=label,
    )


def _text_value(raw: str) -> Any:
    try:
        return float(raw)
    except ValueError:
        return raw.strip().strip("'\"")
