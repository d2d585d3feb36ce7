"""Tapered short windows: a smooth pulse between two timescales of the ladder."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.config import TriggerConfig
from detectors.ratetrigger import detect
from detectors.simulation import acs_background

W = 0.05


def _pulse(fwhm: float, fluence: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian pulse at 1200 s on 1500 s of background without spikes."""
    t, c = acs_background(1500.0, W, spike_rate=0.0, seed=seed)
    x = np.arange(-40, 41) * W
    p = np.exp(-0.5 * (x / (fwhm / 2.355)) ** 2)
    c[int(1200 / W) - 40 : int(1200 / W) + 41] += np.round(fluence * p / p.sum())
    return t, c


def _best(t: np.ndarray, c: np.ndarray, config: TriggerConfig) -> float:
    found = detect(t, W, c, instrument="X", config=config)
    return max((x.significance for x in found if 1195 < x.time_met < 1210), default=0.0)


@pytest.mark.parametrize("fwhm", [0.1, 0.3, 0.6])
def test_a_tapered_window_sees_a_smooth_pulse_better_than_a_boxcar(fwhm):
    """Boxcars of 1, 2, 4, ... bins match a Gaussian pulse to 0.93 of the matched filter's
    signal-to-noise; trapezoids (a quarter of the window at each end weighted 0.4) to
    0.95-0.97 at any width (README, Detectors). Bright pulses (S ~ 70-190), so that
    the difference is not the noise's: +8%, +2%, +2% here (seeds 11-16: 7-8%, 1.6-2.7%,
    1.8-2.3%)."""
    t, c = _pulse(fwhm, 20000.0 * fwhm / 0.15, seed=11)
    box = _best(t, c, TriggerConfig(taper_weight=1.0))
    tapered = _best(t, c, TriggerConfig())
    assert box > 50.0
    assert tapered > 1.01 * box, (tapered, box)
