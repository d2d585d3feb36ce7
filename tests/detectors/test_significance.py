"""Likelihood-ratio significance, the FAR threshold and its calibration."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from detectors.calibration import log10_far, thresholds
from detectors.config import TriggerConfig
from detectors.ratetrigger import detect
from detectors.significance import gaussian_upper_bound, poisson_significance, sigma_to_p
from detectors.simulation import acs_background


def test_low_counts_match_the_exact_poisson_tail_better_than_gauss():
    # b = 2, n = 12: exact one-sided p is about 4.6e-6 (4.4 sigma); (n-b)/sqrt(b) says 7.1
    b, n = 2.0, 12.0
    exact = stats.norm.isf(stats.poisson.sf(n - 1, b))
    lr = float(poisson_significance(n, b))
    assert abs(lr - exact) < 0.5
    assert float(gaussian_upper_bound(n, b)) - exact > 2.0


@given(st.floats(0.5, 1e5), st.floats(0.5, 8.0), st.floats(1.0, 3.0))
def test_gaussian_bound_never_below_lr_for_excesses(b, x, fano):
    n = b + x * np.sqrt(b)
    assert gaussian_upper_bound(n, b, fano) >= poisson_significance(n, b, fano) * (1 - 1e-9)


def test_excess_variance_scales_the_significance():
    s1 = poisson_significance(1100.0, 1000.0, 1.0)
    s2 = poisson_significance(1100.0, 1000.0, 1.44)
    assert np.isclose(s1 / s2, 1.2)
    assert poisson_significance(900.0, 1000.0) < 0


def test_thresholds_share_one_far_and_are_lower_for_long_timescales():
    cfg = TriggerConfig()
    thr = thresholds(cfg, 0.05, 1.0)
    ks = cfg.ladder(0.05)
    assert len(thr) == len(ks) == 9  # 50 ms ... 12.8 s
    # fewer trials on longer windows (from 200 ms; at 100 ms the spike veto also thins them)
    assert np.all(np.diff(thr[2:]) < 0)
    assert abs(thr[1] - thr[2]) < 0.1
    assert 4.0 < thr[-1] < thr[2] < 5.6
    far = log10_far(cfg, 0.05)
    assert np.allclose([10 ** far(k, s) for k, s in zip(ks, thr, strict=True)], 1.0)
    assert np.all(thresholds(cfg, 0.05, 0.01) > thr)


def test_far_calibration_holds_on_simulated_background():
    """At 20/day the false triggers on one simulated day (with spikes, trend, 1.2x scatter)
    must be about 20: the trials factor measured on other seeds carries over."""
    t, c = acs_background(86400.0, 0.05, seed=777)
    n = len(detect(t, 0.05, c, instrument="SIM", config=TriggerConfig(far_per_day=20.0)))
    assert stats.poisson.sf(n - 1, 20.0) > 1e-3 and stats.poisson.cdf(n, 20.0) > 1e-3, n
    assert sigma_to_p(5.0) < 3e-7
