"""Energy bands for event data: a soft burst is found in the soft band."""

from __future__ import annotations

import numpy as np

from detectors.calibration import log10_far
from detectors.config import TriggerConfig
from detectors.ratetrigger import DEFAULT_BANDS, detect_events


def test_soft_burst_found_in_its_band_with_the_shared_far_budget():
    rng = np.random.default_rng(8)
    span = 600.0
    n = rng.poisson(3000 * span)  # 3000 events/s, flat 15-300 keV
    t = np.sort(rng.uniform(0, span, n))
    e = rng.uniform(15, 300, n)
    tb = 400.0 + rng.exponential(0.5, 700)  # 700 soft photons in ~1 s
    eb = rng.uniform(15, 50, tb.size)
    t, e = np.concatenate((t, tb)), np.concatenate((e, eb))
    found = detect_events(t, e, bin_width=0.05, start=0.0, stop=span, instrument="ISGRI")
    assert len(found) == 1
    trig = found[0]
    assert trig.band == (15.0, 50.0)
    assert 400.0 <= trig.time_met <= 402.0
    # the reported FAR counts every band: bands x one band's trials x tail probability
    k = round(trig.timescale / 0.05)
    one_band = 10 ** log10_far(TriggerConfig(), 0.05)(k, trig.significance)
    assert np.isclose(trig.far_per_day, len(DEFAULT_BANDS) * one_band, rtol=0.02)
    quiet = detect_events(t[t < 350], e[t < 350], bin_width=0.05, instrument="ISGRI")
    assert quiet == []
