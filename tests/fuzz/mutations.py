"""Hypothesis strategies: structured mutations of valid inputs, and raw bytes.

FITS mutations know the format: they rewrite the value of a chosen header card with
values that break readers (huge or negative sizes, NaN, unterminated strings, odd
TFORMs), move or drop ``END``, duplicate or drop 2880-byte blocks, and poke bytes in the
data (NaN, infinities, extremes). Text mutations work on lines; JSON and TOML mutations
on the parsed document, so they reach the checks behind the syntax.
"""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

from hypothesis import strategies as st

BLOCK, CARD = 2880, 80

#: Card values that have broken FITS readers: sizes, signs, NaN, strings, junk.
CARD_VALUES = [
    "0", "1", "-1", "2", "3", "8", "16", "-32", "-64", "64", "999", "2147483647",
    "-2147483648", "9223372036854775807", "99999999999999999999999", "1E308", "-1E308",
    "1E999", "NAN", "INF", "-INF", "0.5", "1.0D2", "T", "F", "''", "'", "'abc'",
    "'1D'", "'0D'", "'1E'", "'1J'", "'1I'", "'1K'", "'2K'", "'1B'", "'1L'", "'12A'",
    "'0A'", "'1000000000D'", "'PE(5)'", "'1X'", "'8X'", "'1C'", "'1M'", "'QD(3)'",
    "'D'", "'J '", "'TT'", "'UTC'", "'s'", "'d'", "'RATE'", "'EVENTS'", "'HK'",
    "'POINTING'", "'BINTABLE'", "'IMAGE'", "'TABLE'", "'025600010010'", "'X'*20",
    "(1, 2)", "", "/ comment only", "= 'odd'",
]  # fmt: skip
KEYWORDS = [
    "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS",
    "XTENSION", "EXTNAME", "TFORM1", "TFORM2", "TTYPE1", "TTYPE2", "TZERO1", "TSCAL1",
    "THEAP", "TDIM1", "TIMEZERO", "MJDREFI", "MJDREFF", "MJDREF", "TIMESYS", "TIMEUNIT",
    "TSTART", "TSTOP", "TIMEDEL", "POINTING", "INSTRUME", "END", "CONTINUE", "COMMENT",
]  # fmt: skip
DATA_WORDS = [
    bytes.fromhex("7ff8000000000000"), bytes.fromhex("7ff0000000000000"),
    bytes.fromhex("fff0000000000000"), bytes.fromhex("7fefffffffffffff"),
    bytes.fromhex("7fc00000"), bytes.fromhex("ff800000"), bytes.fromhex("80000000"),
    bytes.fromhex("7fffffff"), b"\x00" * 8, b"\xff" * 8,
]  # fmt: skip


def card_offsets(data: bytes) -> list[tuple[int, str]]:
    """(offset, keyword) of every header card in ``data`` (every HDU)."""
    out: list[tuple[int, str]] = []
    offset = 0
    while offset + CARD <= len(data):
        block_start = offset
        end = None
        for pos in range(offset, len(data) - CARD + 1, CARD):
            key = data[pos : pos + 8].decode("ascii", "replace").strip()
            out.append((pos, key))
            if key == "END":
                end = pos
                break
        if end is None:
            break
        header_end = block_start + math.ceil((end + CARD - block_start) / BLOCK) * BLOCK
        # skip the data: find the next header by its XTENSION card at a block boundary
        nxt = data.find(b"XTENSION=", header_end)
        while nxt != -1 and nxt % BLOCK:
            nxt = data.find(b"XTENSION=", nxt + 1)
        if nxt == -1:
            break
        offset = nxt
    return out


def _card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value}".ljust(CARD)[:CARD].encode("ascii", "replace")


def _apply(data: bytes, cards: list[tuple[int, str]], op: tuple) -> bytes:
    kind = op[0]
    if kind == "value" and cards:
        pos, key = cards[op[1] % len(cards)]
        return data[:pos] + _card(key, op[2]) + data[pos + CARD :]
    if kind == "card" and cards:
        pos, _ = cards[op[1] % len(cards)]
        return data[:pos] + _card(op[2], op[3]) + data[pos + CARD :]
    if kind == "end" and cards:  # an early END, or none at all
        pos, _ = cards[op[1] % len(cards)]
        return data[:pos] + (b"END".ljust(CARD) if op[2] else b" " * CARD) + data[pos + CARD :]
    if kind == "word" and data:
        pos = op[1] % len(data)
        return data[:pos] + op[2] + data[pos + len(op[2]) :]
    if kind == "byte" and data:
        pos = op[1] % len(data)
        return data[:pos] + bytes([op[2]]) + data[pos + 1 :]
    if kind == "block" and len(data) >= BLOCK:
        nblocks = len(data) // BLOCK
        i = op[1] % nblocks
        block = data[i * BLOCK : (i + 1) * BLOCK]
        return data[: i * BLOCK] + (block + block if op[2] else b"") + data[(i + 1) * BLOCK :]
    if kind == "cut":
        return data[: op[1] % (len(data) + 1)]
    if kind == "insert" and data:
        pos = op[1] % len(data)
        return data[:pos] + op[2] + data[pos:]
    return data


_fits_op = st.one_of(
    st.tuples(st.just("value"), st.integers(0, 10_000), st.sampled_from(CARD_VALUES)),
    st.tuples(st.just("value"), st.integers(0, 10_000), st.text(max_size=70)),
    st.tuples(
        st.just("card"),
        st.integers(0, 10_000),
        st.sampled_from(KEYWORDS),
        st.sampled_from(CARD_VALUES),
    ),
    st.tuples(st.just("end"), st.integers(0, 10_000), st.booleans()),
    st.tuples(st.just("word"), st.integers(0, 1 << 20), st.sampled_from(DATA_WORDS)),
    st.tuples(st.just("byte"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("block"), st.integers(0, 100), st.booleans()),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=90)),
)


def fits_mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed FITS file with 1-5 format-aware edits."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = draw(st.sampled_from(seeds))
        for op in draw(st.lists(_fits_op, min_size=1, max_size=5)):
            data = _apply(data, card_offsets(data), op)
        return data

    return build()


def raw_bytes(prefix: bytes = b"") -> st.SearchStrategy[bytes]:
    """Bytes, sometimes behind a valid-looking start (so the magic check is passed)."""
    body = st.binary(max_size=6000)
    return st.one_of(body, body.map(lambda b: prefix + b)) if prefix else body


# ------------------------------------------------------------------ text light curves

_NUMBERS = st.one_of(
    st.sampled_from(["0", "-0", "1", "-1", "nan", "inf", "-inf", "1e999", "1e-320", "1,5", ""]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
)
_DIRECTIVES = st.sampled_from(
    ["MJDREF", "TIMEZERO", "TIMESYS", "TIMEDEL", "INSTRUME", "TRIGTIME", "COLUMNS", "FOO"]
)
_COLUMNS = st.lists(st.sampled_from(["time", "counts", "rate", "error", "x", ""]), max_size=5).map(
    " ".join
)
_LINE = st.one_of(
    st.lists(_NUMBERS, min_size=1, max_size=5).map(" ".join),
    st.lists(_NUMBERS, min_size=1, max_size=4).map(",".join),
    st.tuples(_DIRECTIVES, st.one_of(_NUMBERS, _COLUMNS, st.text(max_size=20))).map(
        lambda kv: f"# {kv[0]} = {kv[1]}"
    ),
    st.text(max_size=40),
)


def text_mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """A seed text file with lines replaced, inserted, deleted or cut."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        lines = seed.decode().splitlines()
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, max(len(lines) - 1, 0)))
            op = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
            if op == "replace" and lines:
                lines[i] = draw(_LINE)
            elif op == "insert":
                lines.insert(i, draw(_LINE))
            elif op == "delete" and lines:
                del lines[i]
            elif op == "truncate":
                lines = lines[:i]
        text = "\n".join(lines).encode("utf-8", "surrogatepass")
        cut = draw(st.one_of(st.none(), st.integers(0, len(text))))
        return text if cut is None else text[:cut]

    return build()


# ------------------------------------------------------------------ JSON and TOML documents

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.sampled_from(["2026-03-14T01:59:26Z", "not a time", "", "#", "ivo://x#y"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def json_mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed JSON object with fields set to other JSON values, removed, or added."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        doc: dict[str, Any] = json.loads(draw(st.sampled_from(seeds)))
        keys = [*doc, "extra", "ra", "ivorn", "flags"]
        for _ in range(draw(st.integers(1, 4))):
            key = draw(st.sampled_from(keys))
            if draw(st.booleans()):
                doc[key] = draw(JSON_VALUES)
            else:
                doc.pop(key, None)
        return json.dumps(doc).encode()

    return build()


def nested(depth_max: int = 200_000) -> st.SearchStrategy[bytes]:
    """Deeply nested arrays or objects, cut or closed: recursion limits in parsers."""
    return st.tuples(st.integers(1, depth_max), st.sampled_from([b"[", b'{"a":'])).map(
        lambda t: t[1] * t[0]
    )


TOML_VALUES = st.one_of(
    st.sampled_from(
        [
            "-1", "0", "1e999", "-1e999", "nan", "inf", "-inf", "99999999999999999999",
            "9223372036854775807", '""', '"10Q"', '"-5s"', '"1e400G"', '"1e400s"',
            '"99999999999999999999G"', '"nan"', '"250ms"', '"0.000001d"', "[1, 2]",
            '["acs", "isgri", "acs"]', '["x"]', "[[1], {a = 1}]", "{a = 1}", "true",
            "1979-05-27T07:32:00Z", "07:32:00", '"\\u0000"', '"/etc/passwd"', '"../../x"',
            '"DEBUG"', '"debug"', '"mqtts://[::1]:99999"', "'''multi\nline'''",
        ]
    ),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats().map(lambda f: repr(f).replace("nan", "nan").replace("inf", "inf")),
    st.text(max_size=20).map(json.dumps),
)  # fmt: skip


def toml_text_mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """The example TOML with uncommented keys set to odd values, lines dropped or added."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        lines = seed.decode().splitlines()
        assigned = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
        for _ in range(draw(st.integers(1, 5))):
            op = draw(st.sampled_from(["value", "value", "key", "delete", "insert", "raw"]))
            i = draw(st.sampled_from(assigned))
            key = lines[i].split("=", 1)[0].strip() or "x"
            if op == "value":
                lines[i] = f"{key} = {draw(TOML_VALUES)}"
            elif op == "key":
                lines[i] = f"{draw(st.text(min_size=1, max_size=12)).__repr__()} = 1"
            elif op == "delete":
                lines[i] = ""
            elif op == "insert":
                lines.insert(i, draw(st.sampled_from(["[paths]", "[nope]", "[checks.x]", "[[a]]"])))
            else:
                lines[i] = draw(st.text(max_size=40))
        return "\n".join(lines).encode("utf-8", "surrogatepass")

    return build()


def toml_documents(seed: bytes) -> st.SearchStrategy[dict]:
    """The example TOML as a dict, with values replaced at the section or key level."""
    base = tomllib.loads(seed.decode())
    values = st.one_of(
        JSON_VALUES,
        st.floats(),
        st.sampled_from(["1e400G", "1e400s", "-3", "10Q", "9" * 400, "nanG", "inf"]),
    )

    @st.composite
    def build(draw: st.DrawFn) -> dict:
        doc = json.loads(json.dumps(base))
        for _ in range(draw(st.integers(1, 4))):
            section = draw(st.sampled_from([*doc, "checks", "nope"]))
            if draw(st.integers(0, 5)) == 0:
                doc[section] = draw(values)
                continue
            table = doc.setdefault(section, {})
            if not isinstance(table, dict):
                continue
            key = draw(st.sampled_from([*table, "unknown_key"] if table else ["k"]))
            table[key] = draw(values)
        return doc

    return build()
