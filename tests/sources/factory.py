"""Real telemetry chunks for the source tests, written with the project's own writer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nrt.telemetry.formats import chunk_bytes, chunk_filename

P1 = "025600010010"
P2 = "025600020010"


def acs(pointing: str = P1, t0: float = 1000.0, seconds: float = 5.0, seed: int = 0) -> bytes:
    """An SPI-ACS-like rate chunk: 50 ms bins from t0 for `seconds`."""
    n = round(seconds / 0.05)
    counts = np.random.default_rng(seed).poisson(4500, n)
    return chunk_bytes(
        "acs", pointing, {"TIME": t0 + 0.05 * np.arange(n), "COUNTS": counts}, t0, t0 + seconds
    )


def isgri(pointing: str = P1, t0: float = 1000.0, seconds: float = 5.0, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    n = 2000
    cols = {
        "TIME": np.sort(rng.uniform(t0, t0 + seconds, n)),
        "ENERGY": rng.uniform(20, 500, n).astype("f4"),
        "DETY": rng.integers(0, 128, n).astype("i2"),
        "DETZ": rng.integers(0, 128, n).astype("i2"),
    }
    return chunk_bytes("isgri", pointing, cols, t0, t0 + seconds)


def hk(pointing: str = P1, t0: float = 1000.0, seconds: float = 5.0) -> bytes:
    t = t0 + np.arange(int(seconds))
    return chunk_bytes("hk", pointing, {"TIME": t, "TEMP": 20 + 0 * t}, t0, t0 + seconds)


def pointing_record(pointing: str = P1, tstart: float = 1000.0, tstop: float = 1010.0) -> bytes:
    cols = {
        "POINTING": [pointing],
        "TSTART": [tstart],
        "TSTOP": [tstop],
        "RA": [83.6],
        "DEC": [22.0],
        "ROLL": [10.0],
    }
    return chunk_bytes("pointing", pointing, cols, tstart, max(tstart, tstop))


MAKERS = {"acs": acs, "isgri": isgri, "hk": hk}


def name(kind: str, pointing: str = P1, seq: int = 1) -> str:
    return chunk_filename(kind, pointing, seq)


def rename_in(inbox: Path, filename: str, data: bytes) -> Path:
    """Deliver like a ground segment: write a temporary dotfile, then rename it in."""
    tmp = inbox / f".{filename}.part"
    tmp.write_bytes(data)
    final = inbox / filename
    os.replace(tmp, final)
    return final
