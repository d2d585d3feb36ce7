"""Valid inputs for every parser that reads outside data: the starting points of the mutations.

Each seed is made by the project's own writers (``chunk_bytes``, astropy for foreign light
curves, ``Alert.to_json``, ``nrt.example.toml``), so a mutation starts from something the
parser accepts and only the mutation decides whether it is refused.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np

from nrt.telemetry.formats import KINDS, chunk_bytes, chunk_filename

ROOT = Path(__file__).resolve().parents[2]
POINTING = "025600010010"
T0 = 1.0e8


@functools.cache
def chunks() -> dict[str, bytes]:
    """One small valid chunk of every telemetry kind, by kind."""
    rng = np.random.default_rng(7)
    n = 40
    times = np.sort(rng.uniform(T0, T0 + 5, n))
    columns = {
        "acs": {"TIME": T0 + 0.05 * np.arange(n), "COUNTS": rng.poisson(4500, n)},
        "isgri": {
            "TIME": times,
            "ENERGY": rng.uniform(15, 600, n).astype("f4"),
            "DETY": rng.integers(0, 128, n),
            "DETZ": rng.integers(0, 128, n),
        },
        "hk": {"TIME": T0 + np.arange(5.0), "T_DET": rng.normal(-10, 0.1, 5)},
        "pointing": {
            "POINTING": np.array([POINTING]),
            "TSTART": np.array([T0]),
            "TSTOP": np.array([T0 + 5]),
            "RA": np.array([83.6]),
            "DEC": np.array([22.0]),
            "ROLL": np.array([12.0]),
        },
    }
    out = {kind: chunk_bytes(kind, POINTING, columns[kind], T0, T0 + 5) for kind in KINDS}
    return out


def chunk_name(kind: str) -> str:
    return chunk_filename(kind, POINTING, 1)


@functools.cache
def lightcurve_fits() -> bytes:
    """An OGIP light curve with TIMEZERO, FRACEXP, a GTI and an EBOUNDS extension."""
    from astropy.io import fits

    n = 64
    t = np.arange(n) * 0.064
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", array=t),
            fits.Column(name="COUNTS", format="J", array=np.full(n, 300, dtype=np.int32)),
            fits.Column(name="FRACEXP", format="E", array=np.full(n, 0.9, dtype=np.float32)),
        ],
        name="RATE",
    )
    for key, value in {
        "MJDREFI": 51910,
        "MJDREFF": 7.4287037e-4,
        "TIMESYS": "TT",
        "TIMEZERO": 1.2e8,
        "TIMEDEL": 0.064,
        "INSTRUME": "BAT",
    }.items():
        table.header[key] = value
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", array=np.array([0.0])),
            fits.Column(name="STOP", format="D", array=np.array([n * 0.064])),
        ],
        name="GTI",
    )
    ebounds = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="E_MIN", format="E", array=np.array([15.0], dtype=np.float32)),
            fits.Column(name="E_MAX", format="E", array=np.array([350.0], dtype=np.float32)),
        ],
        name="EBOUNDS",
    )
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table, ebounds, gti]).writeto(buffer)
    return buffer.getvalue()


LIGHTCURVE_TEXT = (
    "# MJDREF = 60011.0\n# TIMEZERO = 56735.98\n# TIMEDEL = 0.1\n# INSTRUME = SPI-ACS\n"
    "# COLUMNS = time counts error\n"
    + "".join(f"{0.1 * i:.1f} {9000 + (i * 37) % 200} 95\n" for i in range(40))
).encode()


def example_toml() -> bytes:
    return (ROOT / "nrt.example.toml").read_bytes()


@functools.cache
def alert_documents() -> list[bytes]:
    """The JSON of an initial alert, a localization update and a retraction."""
    from nrt.alerts import Alert
    from nrt.alerts.model import AlertFormatError  # noqa: F401  (the documented error)
    from tests.alerts.factory import make_trigger

    first = Alert.initial_from_trigger(make_trigger(), tense="test")
    update = first.updated(localization={"ra": 83.6, "dec": 22.0, "ra_dec_error": 0.1})
    retraction = update.retracted("fuzz seed")
    return [json.dumps(a.to_json()).encode() for a in (first, update, retraction)]
