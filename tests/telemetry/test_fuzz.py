"""Mutated and cut chunks never escape as anything but a TelemetryError."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nrt.telemetry.formats import Chunk, TelemetryError, chunk_bytes, chunk_filename, read_chunk

PID = "025600010010"
_rng = np.random.default_rng(0)
GOOD = chunk_bytes(
    "isgri",
    PID,
    {
        "TIME": np.sort(_rng.uniform(1e8, 1e8 + 5, 40)),
        "ENERGY": _rng.uniform(15, 100, 40).astype("f4"),
        "DETY": _rng.integers(0, 128, 40),
        "DETZ": _rng.integers(0, 128, 40),
    },
    1e8,
    1e8 + 5,
)
NAME = chunk_filename("isgri", PID, 1)
FITS_BYTES = st.sampled_from(list(b" 0123456789-+.ETF'=/ABCDIJKXPQ\x00\xff"))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    edits=st.lists(st.tuples(st.integers(0, 2 * 2880 - 1), FITS_BYTES), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, len(GOOD))),
)
def test_mutations_give_a_chunk_or_a_telemetry_error(edits, cut) -> None:
    data = bytearray(GOOD)
    for position, value in edits:
        data[position] = value
    if cut is not None:
        data = data[:cut]
    try:
        chunk = read_chunk(bytes(data), name=NAME)
    except TelemetryError as exc:
        assert NAME in str(exc) and exc.fix
    else:
        assert isinstance(chunk, Chunk) and chunk.kind == "isgri"
