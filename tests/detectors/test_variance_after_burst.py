"""A bright burst must not lower the significance of what follows it.

The excess variance F of a timescale is measured on the windows of that length
over the previous 600 s (up to ~43 min for 12.8 s windows). A bright burst's
windows, its tail, and the windows whose background holds it are not background
scatter; counted in, they inflated F (and so lowered every significance on that
timescale) for as long as they stayed in the variance window.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.config import TriggerConfig
from detectors.ratetrigger import detect
from detectors.simulation import acs_background, burst_profile

W = 0.05
T0 = 2700.0  # the bright burst: after a full 40 min of excess-variance history


def _significance(kind: str, fluence: float, delay: float, bright: float, config=None):
    dur = 0.2 if kind == "short" else 20.0
    t, c = acs_background(T0 + delay + 100.0, W, seed=1)
    if bright:
        p = burst_profile("long", 20.0, W)
        c[int(T0 / W) : int(T0 / W) + p.size] += np.round(bright * p)
    p = burst_profile(kind, dur, W)
    at = T0 + delay
    c[int(at / W) : int(at / W) + p.size] += np.round(fluence * p)
    found = detect(t, W, c, instrument="X", config=config or TriggerConfig())
    near = [x for x in found if at - 3.0 < x.time_met < at + dur + 10.0]
    assert near, f"{kind} burst at +{delay:g} s not found"
    return max(x.significance for x in near)


def test_a_moderate_burst_after_a_bright_one_keeps_its_significance():
    """1e6 counts in a 20 s burst (S ~ 600), then a ~10 sigma short burst 5 min later
    and a ~9 sigma long one 15 min later: within 3% of their significance alone (the
    estimate without exclusion lost 20% and 7%)."""
    for kind, fluence, delay in (("short", 2500.0, 300.0), ("long", 16000.0, 900.0)):
        alone = _significance(kind, fluence, delay, 0.0)
        after = _significance(kind, fluence, delay, 1e6)
        assert alone > 8.0
        assert abs(after / alone - 1.0) < 0.03, (kind, alone, after)


def test_without_the_exclusion_the_bright_burst_inflates_the_variance():
    """The scenario above is a real test: counting the bright burst's windows in costs
    the short burst 5 min later more than 10% of its significance."""
    keep_all = TriggerConfig(variance_exclusion_sigma=float("inf"))
    alone = _significance("short", 2500.0, 300.0, 0.0, keep_all)
    after = _significance("short", 2500.0, 300.0, 1e6, keep_all)
    assert after < 0.9 * alone, (alone, after)


def test_the_exclusion_cut_must_be_above_the_residual_clip():
    with pytest.raises(ValueError, match="variance_exclusion_sigma"):
        TriggerConfig(variance_exclusion_sigma=2.0)
