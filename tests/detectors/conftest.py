"""Helpers for the detector tests: real light curves and simulated series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.ratetrigger import detect
from detectors.series import from_lightcurve, utc_converter
from detectors.trigger import Trigger

#: GBM trigger time of GRB 230307A, from shared/realdata/README.md.
GRB230307A_UTC = "2023-03-07T15:44:06.67"


def run_file(path: Path, far: float = 1.0, config=None) -> tuple[list[Trigger], float, object]:
    """Batch triggers on a real file and the known burst time in the file's seconds."""
    from astropy.time import Time

    from detectors.config import TriggerConfig
    from nrt.telemetry.lightcurves import read_lightcurve

    lc = read_lightcurve(path)
    cfg = config or TriggerConfig(far_per_day=far)
    s = from_lightcurve(lc, cfg)
    trig = detect(
        s.time,
        s.width,
        s.counts,
        s.exposure,
        s.valid,
        instrument=lc.instrument,
        config=cfg,
        band=lc.band,
        time_to_utc=utc_converter(lc),
        bin_width=s.bin_width,
    )
    if lc.trigger_time is not None:
        ref = lc.trigger_time
    else:  # SPI-ACS: the GBM trigger time, converted into the file's seconds
        ref = float((Time(GRB230307A_UTC, scale="utc") - lc.to_time(0.0)).sec)
    return trig, ref, lc


def simulated(seconds: float = 900.0, width: float = 0.05, rate: float = 9e4, seed: int = 3):
    """A quiet SPI-ACS-like series without spikes: (time, counts)."""
    from detectors.simulation import acs_background

    return acs_background(seconds, width, rate=rate, spike_rate=0.0, seed=seed)


@pytest.fixture
def quiet() -> tuple[np.ndarray, np.ndarray]:
    return simulated()
