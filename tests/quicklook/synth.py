"""A small, fast synthetic pointing for unit tests (the simulator's physics, reduced).

ISGRI events (power law 15-1000 keV with the 59.3 and 511 keV lines, ISGRI-like
resolution, a gain), SPI-ACS 50 ms rates, housekeeping and the pointing record,
written as real telemetry chunks with ``write_chunk``. Options inject the anomalies
the checks must catch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrt.telemetry.formats import chunk_filename, write_chunk

HK_COLUMNS = ("T_DET", "HV_BIAS", "DEADTIME")


def write_pointing(
    directory: Path,
    pointing: str,
    *,
    tstart: float = 8.0e8,
    duration: float = 600.0,
    seed: int = 1,
    rate: float = 200.0,
    gain: float = 1.0,
    hot_pixel: tuple[int, int] | None = None,
    hk_excursion: str | None = None,
    source: tuple[float, float] | None = None,
    attitude: tuple[float, float, float] = (83.6, 22.0, 30.0),
    chunks: int = 2,
) -> list[Path]:
    """Write one pointing's telemetry into `directory`; returns the files."""
    rng = np.random.default_rng(seed)
    tstop = tstart + duration
    n = rng.poisson(rate * duration)
    energy = 15.0 * (1 - rng.random(n) * (1 - (1000 / 15) ** -0.7)) ** (-1 / 0.7)
    pick = rng.random(n)
    energy[pick < 0.06] = 59.3
    energy[(pick >= 0.06) & (pick < 0.075)] = 511.0
    energy = energy + rng.standard_normal(n) * np.sqrt(1.0 + 0.06 * energy)
    time = np.sort(rng.uniform(tstart, tstop, n))
    dety = rng.integers(0, 128, n)
    detz = rng.integers(0, 128, n)
    if hot_pixel is not None:
        k = rng.poisson(20.0 * duration)
        time = np.r_[time, rng.uniform(tstart, tstop, k)]
        energy = np.r_[energy, rng.uniform(15, 200, k)]
        dety = np.r_[dety, np.full(k, hot_pixel[0])]
        detz = np.r_[detz, np.full(k, hot_pixel[1])]
    if source is not None:  # a steady point source through the mask, at instrument angles
        from nrt.telemetry import codedmask

        w = codedmask.shadow(*source).ravel()
        k = rng.poisson(30.0 * duration)
        flat = rng.choice(w.size, size=k, p=w / w.sum())
        time = np.r_[time, rng.uniform(tstart, tstop, k)]
        energy = np.r_[energy, rng.uniform(20, 100, k)]
        dety, detz = np.r_[dety, flat // 128], np.r_[detz, flat % 128]
    order = np.argsort(time, kind="stable")
    events = {
        "TIME": time[order],
        "ENERGY": (np.clip(energy[order], 1, None) * gain).astype(np.float32),
        "DETY": dety[order].astype(np.int16),
        "DETZ": detz[order].astype(np.int16),
    }
    acs_t = tstart + 0.05 * np.arange(int(duration / 0.05))
    acs = {"TIME": acs_t, "COUNTS": rng.poisson(9.0e4 * 0.05, acs_t.size).astype(np.int32)}
    hk_t = tstart + 8.0 * np.arange(int(duration / 8.0))
    hk = {
        "TIME": hk_t,
        "T_DET": -10.0 + 0.05 * rng.standard_normal(hk_t.size),
        "HV_BIAS": 100.0 + 0.05 * rng.standard_normal(hk_t.size),
        "DEADTIME": 0.05 + 0.002 * rng.standard_normal(hk_t.size),
    }
    if hk_excursion is not None:
        mid = hk_t.size // 2
        hk[hk_excursion] = hk[hk_excursion].copy()
        hk[hk_excursion][mid : mid + 3] += 15.0
    files = []
    for kind, cols, instrument in (
        ("isgri", events, "ISGRI"),
        ("acs", acs, "SPI-ACS"),
        ("hk", hk, "ISGRI"),
    ):
        edges = np.linspace(tstart, tstop, chunks + 1)
        for seq in range(chunks):
            sel = (cols["TIME"] >= edges[seq]) & (cols["TIME"] < edges[seq + 1])
            part = {k: v[sel] for k, v in cols.items()}
            path = directory / chunk_filename(kind, pointing, seq)
            files.append(
                write_chunk(
                    path, kind, pointing, part, edges[seq], edges[seq + 1], INSTRUME=instrument
                )
            )
    record = {
        "POINTING": np.array([pointing]),
        "TSTART": np.array([tstart]),
        "TSTOP": np.array([tstop]),
        "RA": np.array([attitude[0]]),
        "DEC": np.array([attitude[1]]),
        "ROLL": np.array([attitude[2]]),
    }
    path = directory / chunk_filename("pointing", pointing, 0)
    files.append(write_chunk(path, "pointing", pointing, record, tstart, tstop))
    return files
