"""Partially coded sources: the localizer finds the source, not its ghost, or says it cannot."""

import numpy as np
import pytest

from detectors import ghosts
from detectors.localize import localize_shadowgrams, simulate_shadowgrams
from nrt.telemetry import codedmask as cm

ATTITUDE = (130.0, -8.0, 30.0)


def _sources(n: int, rng: np.random.Generator, fully_coded: bool):
    found = []
    while len(found) < n:
        r, phi = np.sqrt(rng.uniform(0, 15.0**2)), rng.uniform(0, 2 * np.pi)
        y, z = r * np.cos(phi), r * np.sin(phi)
        if (
            cm.in_field_of_view(y, z)
            and cm.fully_coded(y, z) == fully_coded
            and cm.shadow(y, z).sum() > 2000
        ):
            found.append((y, z))
    return found


@pytest.mark.parametrize("fully_coded", [False, True])
def test_no_ghost_is_ever_announced(fully_coded):
    rng = np.random.default_rng(5 if fully_coded else 6)
    answered = 0
    for y, z in _sources(40, rng, fully_coded):
        burst, bkg = simulate_shadowgrams(y, z, 8000, 2.0, 0.1, rng)
        loc = localize_shadowgrams(burst, bkg, 0.1, ATTITUDE)
        if loc.ambiguous:
            continue
        answered += 1
        offset_arcmin = np.hypot(loc.y - y, loc.z - z) * 60
        assert offset_arcmin < max(5 * loc.error_radius * 60, 2.0), (y, z, loc)
    assert answered >= 30, "most sources must get a position"


def test_the_naive_peak_of_a_partially_coded_source_is_a_ghost_one_period_away():
    y, z = 10.97, -2.2  # the e2e test's burst: decoded at y ~ 0 before ghosts were resolved
    burst, bkg = simulate_shadowgrams(y, z, 30000, 2.0, 0.1, np.random.default_rng(1))
    loc = localize_shadowgrams(burst, bkg, 0.1, ATTITUDE)
    assert not loc.ambiguous and abs(loc.y - y) < 0.05 and abs(loc.z - z) < 0.05
    ty, _ = cm.angles_to_shift(y, z)
    assert any(
        abs(cy - ty) < 1
        for cy, _ in ghosts.candidates(ty - ghosts.PERIOD_PIXELS + cm.CENTER_SHIFT, 0)
    )


def test_identical_shadows_are_reported_ambiguous():
    # Shift 66.6 px and -67.4 px (one period apart) both leave the detector under the mask.
    sy = 66.6
    y, z = cm.shift_to_angles(sy, 10.0)
    burst, bkg = simulate_shadowgrams(float(y), float(z), 30000, 2.0, 0.1, np.random.default_rng(2))
    loc = localize_shadowgrams(burst, bkg, 0.1, ATTITUDE)
    assert loc.ambiguous
