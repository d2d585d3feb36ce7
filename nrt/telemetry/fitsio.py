"""A small, strict, fast FITS binary-table reader for untrusted bytes.

Why not just ``astropy.io.fits.open``: the ingest path must (1) tell a truncated transfer
from a valid file before touching the data, (2) never memory-map a file another process
may still change (a shrinking mapped file kills the process with SIGBUS), and (3) keep up
with astropy's own speed while also validating. So the headers are parsed here (a few
dozen cards; astropy's ``Card`` machinery costs more than reading 16 MB) and the table is
viewed with a numpy structured dtype and copied once into native-endian columns. Anything
unusual (variable-length arrays, bit columns) is refused with a clear error rather than
guessed at. Writing stays with astropy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from nrt.telemetry.errors import TelemetryError

BLOCK = 2880
CARD = 80
MAX_HEADER_BLOCKS = 200  # 7200 cards: far beyond any real header
MAX_HDUS = 16
_NOT_VALUES = frozenset({"COMMENT", "HISTORY", ""})


@dataclass(frozen=True)
class HDU:
    """One header-data unit: its cards (as a dict) and where its data sit in the file."""

    header: dict[str, Any]
    data_offset: int
    data_size: int

    @property
    def extname(self) -> str:
        return str(self.header.get("EXTNAME", "")).strip().upper()


def header_number(
    header: dict[str, Any], key: str, label: str, where: str, default: Any = None, *, integer=False
) -> Any:
    """A numeric keyword as int/float, or a TelemetryError naming it (never a bare ValueError)."""
    raw = header.get(key, default)
    if raw is None:
        raise TelemetryError(label, f"{where} {key}", "is missing", f"set {key}")
    ok = isinstance(raw, int) if integer else isinstance(raw, (int, float))
    if isinstance(raw, bool) or not ok or (not integer and not math.isfinite(raw)):
        kind = "an integer" if integer else "a finite number"
        raise TelemetryError(label, f"{where} {key}", f"is {raw!r}, not {kind}", f"fix {key}")
    return raw


def check_magic(head: bytes, label: str) -> None:
    """Refuse anything that does not start like a FITS primary header."""
    if not head.startswith(b"SIMPLE  =") or head[29:30] != b"T":
        raise TelemetryError(
            label,
            "payload",
            f"is not FITS (starts with {head[:16]!r}, expected b'SIMPLE  =  ... T')",
            "send the FITS file's bytes unchanged (see nrt.telemetry.formats.write_chunk)",
        )


def walk_hdus(data: bytes, label: str) -> list[HDU]:
    """Parse every header and locate every data unit, checking nothing is cut off."""
    check_magic(data[:CARD], label)
    hdus: list[HDU] = []
    offset = 0
    while offset < len(data) and len(hdus) < MAX_HDUS:
        if not data[offset : offset + CARD].strip(b"\0 "):
            break  # trailing zero/blank padding after the last HDU is tolerated
        header, data_offset = _read_header(data, offset, label, len(hdus))
        size = _data_size(header, label, len(hdus))
        if data_offset + size > len(data):
            raise TelemetryError(
                label,
                f"HDU {len(hdus)} data",
                f"truncated: header promises {size} bytes, only {len(data) - data_offset} present",
                "the transfer was cut short: send the complete file again",
            )
        hdus.append(HDU(header, data_offset, size))
        offset = data_offset + -(-size // BLOCK) * BLOCK
    return hdus


def _read_header(data: bytes, offset: int, label: str, index: int) -> tuple[dict[str, Any], int]:
    cards: dict[str, Any] = {}
    last_key = ""
    for block in range(MAX_HEADER_BLOCKS):
        start = offset + block * BLOCK
        if start + BLOCK > len(data):
            raise TelemetryError(
                label,
                f"HDU {index} header",
                "truncated: the header ends before its END card",
                "the transfer was cut short: send the complete file again",
            )
        try:
            text = data[start : start + BLOCK].decode("ascii")
        except UnicodeDecodeError as exc:
            raise TelemetryError(
                label, f"HDU {index} header", "has non-ASCII bytes", "send a valid FITS file"
            ) from exc
        for pos in range(0, BLOCK, CARD):
            card = text[pos : pos + CARD]
            key = card[:8].rstrip()
            if key == "END" and not card[8:].strip():
                return cards, start + BLOCK
            if key == "CONTINUE" and isinstance(cards.get(last_key), str):
                previous = cards[last_key]
                if previous.endswith("&"):
                    cards[last_key] = previous[:-1] + str(card_value(card[8:]) or "")
                continue
            if key == "HIERARCH" and "=" in card:
                name, _, rest = card[9:].partition("=")
                key, card = name.strip().upper(), "HIERARCH= " + rest
            if key in _NOT_VALUES or card[8:10] != "= ":
                continue
            cards[key] = card_value(card[10:])
            last_key = key
    raise TelemetryError(
        label,
        f"HDU {index} header",
        f"no END card within {MAX_HEADER_BLOCKS} blocks",
        "this is not a FITS header: send a FITS file",
    )


def card_value(field: str) -> Any:
    """The value of a FITS card's value field: str, bool, int, float, or None if empty."""
    text = field.lstrip()
    if text.startswith("'"):
        parts, i = [], 1
        while True:
            j = text.find("'", i)
            if j < 0:
                return text[1:].rstrip()
            if text[j + 1 : j + 2] == "'":  # '' is an escaped quote
                parts.append(text[i : j + 1])
                i = j + 2
                continue
            parts.append(text[i:j])
            return "".join(parts).rstrip()
    token = text.split("/", 1)[0].strip()
    if token in ("T", "F"):
        return token == "T"
    if not token:
        return None
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token.replace("D", "E").replace("d", "e"))
    except ValueError:
        return token


def _data_size(header: dict[str, Any], label: str, index: int) -> int:
    where = f"HDU {index}"

    def number(key: str, default: int | None = None) -> int:
        return header_number(header, key, label, where, default, integer=True)

    naxis = number("NAXIS", 0)
    if not 0 <= naxis <= 999:
        raise TelemetryError(label, f"{where} NAXIS", f"is {naxis}", "use 0-999 axes")
    if naxis == 0:
        return 0
    bitpix = abs(number("BITPIX"))
    axes = [number(f"NAXIS{i}") for i in range(1, naxis + 1)]
    pcount, gcount = number("PCOUNT", 0), number("GCOUNT", 1)
    if min(*axes, pcount, gcount) < 0:
        raise TelemetryError(
            label, f"{where} header", "negative NAXISn/PCOUNT/GCOUNT", "rewrite the file"
        )
    return bitpix // 8 * gcount * (pcount + math.prod(axes))


_TFORM = re.compile(r"\s*(\d*)([LXBIJKAEDCMPQ])")
_CODES = {"L": "u1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_CODES.update({"C": ">c8", "M": ">c16"})
#: (TFORM code, TZEROn) pairs that mean "unsigned" (or signed bytes), not scaling.
_UNSIGNED = {("I", 32768): "u2", ("J", 2**31): "u4", ("K", 2**63): "u8", ("B", -128): "i1"}


def table_columns(hdu: HDU, data: bytes, label: str) -> dict[str, np.ndarray]:
    """Native-endian copies of a BINTABLE's columns, keyed by upper-case name."""
    h, ext = hdu.header, hdu.extname or "table"
    if str(h.get("XTENSION", "")).strip() != "BINTABLE":
        raise TelemetryError(
            label, ext, f"is a {h.get('XTENSION')!r} extension, not BINTABLE", "write a BINTABLE"
        )
    names, formats, offsets, codes = [], [], [], []
    pos = 0
    tfields = header_number(h, "TFIELDS", label, ext, 0, integer=True)
    if not 0 <= tfields <= 999:
        raise TelemetryError(label, f"{ext} TFIELDS", f"is {tfields}", "use 0-999 columns")
    for i in range(1, tfields + 1):
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
        repeat, code = int(match[1] or 1), match[2]
        base = np.dtype(f"S{repeat}") if code == "A" else np.dtype(_CODES[code])
        dtype = base if code == "A" or repeat == 1 else np.dtype((base, (repeat,)))
        if repeat:
            names.append(name)
            formats.append(dtype)
            offsets.append(pos)
            codes.append((code, i))
        pos += dtype.itemsize if repeat else 0
    rowlen = header_number(h, "NAXIS1", label, ext, integer=True)
    nrows = header_number(h, "NAXIS2", label, ext, integer=True)
    if pos != rowlen or rowlen <= 0:
        raise TelemetryError(
            label, ext, f"columns add up to {pos} bytes per row, NAXIS1={rowlen}", "rewrite it"
        )
    if len(set(names)) != len(names):
        raise TelemetryError(label, ext, "duplicate column names", "give each column its own name")
    if nrows < 0 or rowlen * nrows > min(hdu.data_size, len(data) - hdu.data_offset):
        # e.g. a BITPIX other than 8 makes the header promise less data than the rows need
        raise TelemetryError(
            label,
            f"{ext} data",
            f"{nrows} rows of {rowlen} bytes do not fit in the {hdu.data_size} data bytes",
            "write BITPIX = 8 and NAXIS1/NAXIS2 that match the table",
        )
    struct = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": rowlen})
    rows = np.frombuffer(data, dtype=struct, count=nrows, offset=hdu.data_offset)
    return {
        name: _decode(rows[name], code, h, i, label)
        for name, (code, i) in zip(names, codes, strict=True)
    }


def _decode(raw: np.ndarray, code: str, h: dict[str, Any], i: int, label: str) -> np.ndarray:
    """Native-endian copy of one column, with the FITS unsigned/scaling conventions applied."""
    if code == "A":
        return np.char.rstrip(raw.astype("U"))
    if code == "L":
        return raw == ord("T")
    native = raw.astype(raw.dtype.newbyteorder("="))
    where = f"{h.get('EXTNAME', 'table')} column {h.get(f'TTYPE{i}', i)}"
    zero = header_number(h, f"TZERO{i}", label, where, 0)
    scale = header_number(h, f"TSCAL{i}", label, where, 1)
    target = _UNSIGNED.get((code, zero)) if scale == 1 else None
    if target:  # flipping the sign bit is adding 2**(bits-1) modulo 2**bits
        nbytes = native.dtype.itemsize
        flip = np.array(1 << (8 * nbytes - 1), dtype=f"u{nbytes}")
        return (native.view(f"u{nbytes}") ^ flip).view(target)
    if zero != 0 or scale != 1:
        return native * float(scale) + float(zero)
    return native


# --------------------------------------------------------------------------- writing

#: numpy dtype -> (TFORM code, big-endian dtype) for the columns we write.
_WRITE_CODES = {
    "f8": ("D", ">f8"),
    "f4": ("E", ">f4"),
    "i8": ("K", ">i8"),
    "i4": ("J", ">i4"),
    "i2": ("I", ">i2"),
    "u1": ("B", "u1"),
    "b1": ("L", "u1"),
}


def format_card(key: str, value: Any, comment: str = "") -> str:
    """One 80-character fixed-format FITS card (FITS 4.0, section 4.2)."""
    if len(key) > 8 or not re.fullmatch(r"[A-Z0-9_-]+", key):
        raise ValueError(f"FITS keyword {key!r} must be 1-8 of A-Z 0-9 _ -")
    if isinstance(value, (bool, np.bool_)):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        text = f"{int(value):>20}"
    elif isinstance(value, (float, np.floating)):
        text = f"{_format_float(float(value)):>20}"
    elif isinstance(value, str):
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"FITS string for {key} must be printable ASCII: {value!r}")
        quoted = "'" + value.replace("'", "''").ljust(8) + "'"
        text = f"{quoted:<20}"
    else:
        raise TypeError(f"cannot write {type(value).__name__} as FITS keyword {key}")
    card = f"{key:<8}= {text}"
    if comment:
        card += f" / {comment}"
    if len(card) > CARD:
        raise ValueError(f"FITS card for {key} is longer than 80 characters")
    return card.ljust(CARD)


def _format_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"FITS header values must be finite, not {value}")
    text = repr(value)
    if len(text) > 20:
        text = f"{value:.16G}"
    mantissa, _, exponent = text.upper().partition("E")
    if "." not in mantissa:
        mantissa += "."
    return mantissa + ("E" + exponent if exponent else "")


def _header_block(cards: list[str]) -> bytes:
    text = "".join(cards) + "END".ljust(CARD)
    text += " " * (-len(text) % BLOCK)
    return text.encode("ascii")


def table_bytes(
    extname: str,
    columns: dict[str, np.ndarray],
    table_cards: dict[str, Any],
    primary_cards: dict[str, Any],
) -> bytes:
    """A FITS file: an empty primary HDU and one BINTABLE; fast and deterministic.

    ``columns`` are 1-D arrays of the dtypes in ``_WRITE_CODES`` or byte strings (``S``).
    """
    names, dtypes, forms = [], [], []
    for name, values in columns.items():
        kind = values.dtype.str[1:]
        if values.dtype.kind == "S":
            form, dtype = f"{values.dtype.itemsize}A", values.dtype.str
        elif kind in _WRITE_CODES:
            form, dtype = _WRITE_CODES[kind]
        else:
            raise TypeError(f"column {name}: cannot write dtype {values.dtype}")
        names.append(name)
        dtypes.append((name, dtype))
        forms.append(form)
    nrows = len(next(iter(columns.values()))) if columns else 0
    rows = np.empty(nrows, dtype=dtypes)
    for name, values in columns.items():
        if len(values) != nrows:
            raise ValueError(f"column {name} has {len(values)} rows, not {nrows}")
        rows[name] = np.where(values, ord("T"), ord("F")) if values.dtype == np.bool_ else values
    primary = [
        format_card("SIMPLE", True, "conforms to FITS standard"),
        format_card("BITPIX", 8),
        format_card("NAXIS", 0),
        format_card("EXTEND", True),
    ] + [format_card(k, v) for k, v in primary_cards.items()]
    table = [
        format_card("XTENSION", "BINTABLE", "binary table extension"),
        format_card("BITPIX", 8),
        format_card("NAXIS", 2),
        format_card("NAXIS1", rows.dtype.itemsize, "width of table in bytes"),
        format_card("NAXIS2", nrows, "number of rows in table"),
        format_card("PCOUNT", 0),
        format_card("GCOUNT", 1),
        format_card("TFIELDS", len(names)),
    ]
    for i, (name, form) in enumerate(zip(names, forms, strict=True), start=1):
        table += [format_card(f"TTYPE{i}", name), format_card(f"TFORM{i}", form)]
    table.append(format_card("EXTNAME", extname))
    table += [format_card(k, v) for k, v in table_cards.items()]
    payload = rows.tobytes()
    return _header_block(primary) + _header_block(table) + payload + b"\0" * (-len(payload) % BLOCK)
