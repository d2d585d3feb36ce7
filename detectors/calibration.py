"""From one false-alarm rate per day to one significance threshold.

Under background only, the significance of each window is close to a standard
normal, but the windows are many and correlated (overlapping phases, nested
timescales). We write the false-alarm rate at threshold ``S`` as

    FAR(S) = tau * (86400 / bin_width) * Q(S)

where ``Q`` is the one-sided normal tail and ``tau`` is the effective number
of independent trials per base bin for the whole timescale ladder. ``tau`` is
measured (``measure_trials``) by running the full trigger (spike veto and
grouping included) on simulated overdispersed background and counting groups
above thresholds from 4.8 to 5.2 sigma; the fit is extrapolated to the threshold of
a few per day and checked by the benchmark on >= 10 simulated days
(``tests/benchmarks/bench_detectors.py``). The numbers below come from that
script: ladder length (number of timescales) -> tau.
"""

from __future__ import annotations

import numpy as np

from detectors.config import TriggerConfig
from detectors.significance import p_to_sigma, sigma_to_p

#: tau per ladder length, phases=4, measured with ``python -m detectors.calibration``
#: (groups above 4.75 sigma, counted above 4.8 ... 5.2 sigma): 9 timescales (50 ms bins,
#: 30 simulated days, 9e4 count/s, scatter 1.2, spikes): 2.7 to 3.3, 2.9 overall (42 groups
#: above 5 sigma); 8 timescales (64 ms bins, 20 days, 5e3 count/s): 3.0 to 3.3, 3.1 overall.
TRIALS_PER_BIN: dict[int, float] = {8: 3.1, 9: 2.9}
_DEFAULT_TAU = 3.1


def trials_per_day(config: TriggerConfig, bin_width: float) -> float:
    """Effective independent trials per day for this ladder and bin width."""
    n = len(config.ladder(bin_width))
    tau = TRIALS_PER_BIN.get(n, _DEFAULT_TAU)
    return tau * 86400.0 / bin_width


def threshold(config: TriggerConfig, bin_width: float, far_per_day: float | None = None) -> float:
    """The significance a window must reach for ``far_per_day`` (default: the config's)."""
    far = config.far_per_day if far_per_day is None else far_per_day
    return float(p_to_sigma(far / trials_per_day(config, bin_width)))


def far_per_day(config: TriggerConfig, bin_width: float, significance: float) -> float:
    """False-alarm rate per day of a group whose best window has ``significance``."""
    return float(trials_per_day(config, bin_width) * sigma_to_p(significance))


def measure_trials(
    group_max: np.ndarray, days: float, bin_width: float, sigmas: np.ndarray
) -> tuple[float, np.ndarray]:
    """Fit ``tau`` from the best significances of groups found on ``days`` of background.

    Returns (tau, per-threshold estimates): for each ``sigma``, the rate of
    groups above it divided by ``86400/bin_width * Q(sigma)``; ``tau`` is their
    weighted mean (weights = counts), i.e. the value at the high end that the
    threshold actually uses.
    """
    group_max = np.asarray(group_max)
    counts = np.array([(group_max >= s).sum() for s in sigmas], dtype=float)
    per = counts / days / (86400.0 / bin_width) / sigma_to_p(sigmas)
    w = np.maximum(counts, 1e-9)
    return float(np.sum(per * w) / np.sum(w)), per


def main(days: float = 30.0, bin_width: float = 0.05, seed: int = 500) -> None:  # pragma: no cover
    """Measure tau on simulated SPI-ACS-like background: ``python -m detectors.calibration``."""
    from detectors.ratetrigger import detect
    from detectors.simulation import acs_background

    cfg = TriggerConfig()
    sigmas = np.array([4.8, 4.9, 5.0, 5.1, 5.2])
    best: list[float] = []
    for d in range(int(np.ceil(days))):
        t, c = acs_background(86400.0, bin_width, seed=seed + d)
        trig = detect(t, bin_width, c, instrument="SIM", config=cfg, threshold_sigma=4.75)
        best += [x.significance for x in trig]
    tau, per = measure_trials(np.array(best), days, bin_width, sigmas)
    print(f"ladder {len(cfg.ladder(bin_width))} timescales, {days} days: tau = {tau:.3f}")
    for s, p in zip(sigmas, per, strict=True):
        print(f"  >= {s:.2f} sigma: tau = {p:.3f}")


if __name__ == "__main__":  # pragma: no cover
    main()
