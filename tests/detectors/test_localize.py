"""Coded-mask localization on simulated ISGRI-like bursts."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.localize import (
    _separation_arcmin,
    calibrate,
    localize_events,
    localize_trigger,
    simulate_shadowgrams,
)
from detectors.trigger import Trigger
from nrt.telemetry import codedmask as cm


def test_error_radius_contains_90_percent_on_fresh_bursts():
    res = calibrate(n=120, seed=99)  # other seed than the calibration's
    s, e = res["significance"], res["errors"]
    good = s >= 10
    assert good.sum() >= 30
    assert res["containment"] >= 0.8
    assert np.median(e[good]) < 3.0  # arcmin


def test_events_to_radec_with_background_interval_and_band():
    rng = np.random.default_rng(1)
    att = (83.6, 22.0, 30.0)
    ra0, dec0 = 84.9, 24.1  # about 2.4 deg off axis
    y, z = cm.radec_to_instrument(ra0, dec0, att)
    assert cm.fully_coded(y, z)
    burst, bkg = simulate_shadowgrams(float(y), float(z), 3000, 1.0, 0.1, rng)

    def events(img, t0, t1):
        iy, iz = np.nonzero(img)
        n = img[iy, iz]
        return (
            rng.uniform(t0, t1, n.sum()),
            np.repeat(iy, n),
            np.repeat(iz, n),
        )

    tb, yb, zb = events(burst, 100.0, 101.0)
    tg, yg, zg = events(bkg, 80.0, 90.0)
    t, dy, dz = (np.concatenate(p) for p in ((tb, tg), (yb, yg), (zb, zg)))
    energy = np.full(t.size, 60.0)
    loc = localize_events(t, dy, dz, (100.0, 101.0), (80.0, 90.0), att, energy, (20.0, 200.0))
    assert loc.significance > 10
    assert _separation_arcmin(loc.ra, loc.dec, ra0, dec0) < 60 * loc.error_radius
    assert loc.error_radius * 60 < 3.0
    with pytest.raises(ValueError, match="overlaps"):
        localize_events(t, dy, dz, (100.0, 101.0), (95.0, 100.5), att)


def test_localize_a_rate_trigger_or_say_none():
    rng = np.random.default_rng(3)
    att = (250.0, -40.0, 100.0)
    y, z = 1.5, -3.0
    burst, bkg = simulate_shadowgrams(y, z, 4000, 1.0, 0.1, rng)

    def events(img, t0, t1):
        iy, iz = np.nonzero(img)
        n = img[iy, iz]
        return rng.uniform(t0, t1, n.sum()), np.repeat(iy, n), np.repeat(iz, n)

    parts = [events(burst, 499.0, 500.0), events(bkg, 487.0, 497.0)]
    t, dy, dz = (np.concatenate([p[i] for p in parts]) for i in range(3))
    trig = Trigger("ISGRI", "", 500.0, 1.0, 12.0, 1e-6, 5000.0, 1000.0, (15.0, 300.0))
    loc = localize_trigger(trig, t, dy, dz, att)
    assert loc is not None
    assert abs(loc.y - y) * 60 < 3 and abs(loc.z - z) * 60 < 3
    ra, dec = cm.instrument_to_radec(y, z, att)
    assert _separation_arcmin(loc.ra, loc.dec, float(ra), float(dec)) < 60 * loc.error_radius
    # a trigger at a time without imager excess: no localization
    quiet = Trigger("ISGRI", "", 492.0, 1.0, 12.0, 1e-6, 5000.0, 1000.0, None)
    parts = [events(bkg, 470.0, 493.0)]
    t, dy, dz = (np.concatenate([p[i] for p in parts]) for i in range(3))
    assert localize_trigger(quiet, t, dy, dz, att, background_factor=2.0) is None
