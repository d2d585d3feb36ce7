"""Telling a coded-mask source from its ghosts, for sources in the partially coded field.

The decoded sky covers the fully coded field only (|angle| < 5.7 deg). The mask is
a MURA replicated cyclically, so a source in the partially coded field (up to
15.6 deg) also correlates with the mask one period (134 detector pixels, about 11
deg) away: its peak appears inside the decoded field, at the true position minus
a whole number of periods. Left alone, a burst 11 deg off axis is announced at
the centre of the field with an error of arcminutes.

The candidates are the decoded peak shifted by -1, 0, +1 periods in each axis,
inside the field of view. Each predicts a different illumination of the
detector (the shield hides part of it from a partially coded source); the one
whose predicted shadow best explains the net shadowgram (largest least-squares
signal, with a free flat term) is the source.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from nrt.telemetry import codedmask as cm

#: One period of the cyclic mask, in detector pixels of shadow shift.
PERIOD_PIXELS = cm.MURA_ORDER * cm.ELEMENT_PIXELS


def _fit_strength(net: np.ndarray, weight: np.ndarray, model: np.ndarray) -> float:
    """The chi^2 drop of fitting ``a * model + b`` (weighted) instead of ``b`` alone."""
    w = weight / weight.sum()
    m = model - (w * model).sum()
    d = net - (w * net).sum()
    norm = float((weight * m * m).sum())
    if norm <= 0:
        return -np.inf
    a = float((weight * m * d).sum()) / norm
    return a * a * norm if a > 0 else -np.inf


def candidates(sky_i: float, sky_j: float) -> list[tuple[float, float]]:
    """The decoded peak (sky pixels) and its aliases one period away, as shifts in pixels."""
    sy, sz = sky_i - cm.CENTER_SHIFT, sky_j - cm.CENTER_SHIFT
    limit = cm.CENTER_SHIFT + cm.DETECTOR_PIXELS
    found = []
    for ky, kz in itertools.product((-1, 0, 1), repeat=2):
        cy, cz = sy + ky * PERIOD_PIXELS, sz + kz * PERIOD_PIXELS
        if abs(cy) < limit and abs(cz) < limit:
            found.append((cy, cz))
    return found


#: A candidate must explain the data better than every other by this chi^2 (5 sigma).
MIN_PREFERENCE = 25.0


@dataclass(frozen=True)
class Resolution:
    y: float  # instrument angles of the chosen candidate, degrees
    z: float
    ghost: bool  # the decoded peak was an alias of the source
    ambiguous: bool  # another candidate explains the data as well: no position can be given
    preference: float  # chi^2 by which the chosen candidate beats the runner-up


def resolve(net: np.ndarray, variance: np.ndarray, sky_i: float, sky_j: float) -> Resolution:
    """Which alias of the decoded peak the source is.

    ``net`` is the burst shadowgram minus the scaled background one, ``variance`` its
    per-pixel Poisson variance (burst counts + scale^2 x background counts). Where the
    detector lies entirely under the mask for two candidates one period apart (shifts
    within 4 pixels of the fully coded field's edge), their shadows are identical and
    the data cannot choose: ``ambiguous`` says so.
    """
    weight = 1.0 / np.maximum(variance, 1.0)
    scored = []
    for cy, cz in candidates(sky_i, sky_j):
        y, z = cm.shift_to_angles(cy, cz)
        scored.append((_fit_strength(net, weight, cm.shadow(float(y), float(z))), cy, cz))
    scored.sort(reverse=True)
    best, cy, cz = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else -np.inf
    y, z = cm.shift_to_angles(cy, cz)
    peak = (sky_i - cm.CENTER_SHIFT, sky_j - cm.CENTER_SHIFT)
    preference = float(best - runner_up) if np.isfinite(runner_up) else float("inf")
    return Resolution(
        y=float(y),
        z=float(z),
        ghost=(cy, cz) != peak,
        ambiguous=preference < MIN_PREFERENCE,
        preference=preference,
    )
