"""Poisson outliers in a detector map: noisy and dead pixels, per module.

Each module's level is the median of its pixels (robust against the outliers it
looks for). A pixel is *noisy* if P(N >= n | level) < p and *dead* if
P(N <= n | level) < p, with ``p = false_positives / (2 * 16384)``: under pure
Poisson counts around the module level the expected number of falsely flagged
pixels per map is ``false_positives`` (default 1e-3, one false flag in a
thousand pointings). A pixel can only be called dead when
``level > -ln(p)`` (about 17 counts for the default): below that a zero is not
significant, and ``dead_sensitive`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from detectors.quicklook.layout import N_MODULES, module_map
from nrt.telemetry.codedmask import DETECTOR_PIXELS

DEFAULT_FALSE_POSITIVES = 1e-3


@dataclass(frozen=True)
class Outliers:
    noisy: np.ndarray  # bool (128, 128)
    dead: np.ndarray  # bool (128, 128)
    level: np.ndarray  # float (128, 128): the module level each pixel is tested against
    p_threshold: float
    dead_sensitive: bool


def pixel_threshold(false_positives: float = DEFAULT_FALSE_POSITIVES) -> float:
    """Per-pixel, per-tail probability giving `false_positives` expected false flags per map."""
    return false_positives / (2 * DETECTOR_PIXELS**2)


def find_outliers(counts: np.ndarray, false_positives: float = DEFAULT_FALSE_POSITIVES) -> Outliers:
    """Noisy and dead pixels of a (128, 128) counts map against each module's median."""
    counts = np.asarray(counts)
    modules = module_map()
    level = np.empty(counts.shape, dtype=float)
    for m in range(N_MODULES):
        sel = modules == m
        level[sel] = float(np.median(counts[sel]))
    p = pixel_threshold(false_positives)
    # sf(n - 1) = P(N >= n); cdf(n) = P(N <= n)
    noisy = poisson.sf(counts - 1, level) < p
    dead = poisson.cdf(counts, level) < p
    return Outliers(noisy, dead, level, p, bool(level.min() > -np.log(p)))


def cleaned(counts: np.ndarray, false_positives: float = DEFAULT_FALSE_POSITIVES) -> np.ndarray:
    """The map with noisy and dead pixels replaced by their module level (for imaging)."""
    found = find_outliers(counts, false_positives)
    out = np.asarray(counts, dtype=float).copy()
    bad = found.noisy | found.dead
    out[bad] = found.level[bad]
    return out
