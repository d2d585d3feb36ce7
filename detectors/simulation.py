"""SPI-ACS-like count series for calibration and benchmarks (numpy only).

The telemetry simulator writes whole telemetry files; the detectors need plain
count arrays of many days, fast and reproducible, with the background features
that matter to a trigger: about 9e4 count/s, scatter 1.2x wider than Poisson
(a gamma-Poisson mixture), slow orbital trends, and single-bin cosmic-ray
spikes. Bursts are added with :func:`burst_profile`.
"""

from __future__ import annotations

import numpy as np


def acs_background(
    seconds: float,
    bin_width: float = 0.05,
    *,
    rate: float = 9.0e4,
    scatter: float = 1.2,
    trend: float = 0.05,
    orbit: float = 3 * 86400.0,
    spike_rate: float = 0.002,
    spike_counts: float = 1500.0,
    seed: int = 0,
    dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Bin start times and counts (the expected rate is :func:`acs_mean`)."""
    rng = np.random.default_rng(seed)
    n = round(seconds / bin_width)
    t = np.arange(n) * bin_width
    mu = acs_mean(t, bin_width, rate=rate, trend=trend, orbit=orbit)
    extra = scatter**2 - 1.0
    if extra > 0:
        shape = mu / extra  # gamma with mean 1 and variance extra/mu
        lam = rng.gamma(shape, 1.0 / shape) * mu
    else:
        lam = mu
    counts = rng.poisson(lam).astype(dtype)
    nspike = rng.poisson(spike_rate * seconds)
    where = rng.integers(0, n, nspike)
    counts[where] += rng.exponential(spike_counts, nspike).round()
    return t, counts


def acs_mean(
    t: np.ndarray,
    bin_width: float,
    *,
    rate: float = 9.0e4,
    trend: float = 0.05,
    orbit: float = 3 * 86400.0,
) -> np.ndarray:
    """Expected background counts per bin (the truth an optimal filter may use)."""
    phase = 2 * np.pi * t / orbit
    return rate * bin_width * (1.0 + trend * np.sin(phase) + 0.5 * trend * np.sin(3 * phase + 1.0))


def burst_profile(kind: str, duration: float, bin_width: float) -> np.ndarray:
    """Normalized (sum 1) burst light curve on the bin grid.

    ``"short"``: a Gaussian pulse with FWHM ``duration``; ``"long"``: a fast-rise
    exponential-decay pulse whose 90% of counts fall within ``duration``.
    """
    if kind == "short":
        sigma = duration / 2.355
        x = np.arange(-4 * sigma, 4 * sigma + bin_width, bin_width)
        p = np.exp(-0.5 * (x / sigma) ** 2)
    elif kind == "long":
        rise, decay = duration / 20.0, duration / 3.0
        x = np.arange(0, 5 * decay + 5 * rise, bin_width)
        p = np.exp(2 * np.sqrt(rise / decay)) * np.exp(-rise / np.maximum(x, 1e-9) - x / decay)
    else:
        raise ValueError(f"burst kind must be 'short' or 'long' (got {kind!r})")
    return p / p.sum()
