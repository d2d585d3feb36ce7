"""From one false-alarm rate per day to a significance threshold per timescale.

Under background only, the significance of a window is close to a standard
normal, but there are many windows, and the short timescales have far more of
them than the long ones. For timescale ``k`` (bins of width ``w``) we write

    FAR_k(S) = tau_k * 86400 / (k * w) * Q(S)

where ``Q`` is the one-sided normal tail and ``tau_k`` the effective number of
independent trials per window length (phase offsets and overlaps included; the
spike veto makes it small for k = 1). The stated false-alarm rate is shared
equally among the ``n`` timescales of the ladder: a window of timescale ``k``
fires when ``n * FAR_k(S) <= FAR``. So the one threshold is the rate per day,
and long timescales, with few trials, fire at a lower significance than short
ones (as in GBM's per-algorithm thresholds) instead of wasting the budget.

``tau_k`` is measured by :func:`main` (``python -m detectors.calibration``):
the full trigger (spike veto included) on simulated SPI-ACS-like background
(9e4 count/s, 1.2x Poisson scatter, trends, spikes); for each timescale the
windows above 3.5 sigma are clustered and the clusters above 3.75 ... 4.5 sigma
counted. The result for the whole ladder is checked by the benchmark on 10
other simulated days (``tests/benchmarks/bench_detectors.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

from detectors.config import TriggerConfig
from detectors.significance import p_to_sigma

#: tau_k by window length in bins (phases = 4), from ``main()`` on 12 simulated days
#: (measured 0.05-0.10, 1.8-2.4, 3.4-3.9, 3.4-4.3, 2.9-3.5, 3.2-4.0, 2.9-8.2, 1.7-2.9,
#: 1.2-2.3 for k = 1 ... 256 at 3.75-4.5 sigma): the upper end of each is used.
TRIALS_PER_WINDOW: dict[int, float] = {
    1: 0.1,
    2: 2.4,
    4: 3.9,
    8: 4.3,
    16: 3.6,
    32: 4.0,
    64: 6.0,
    128: 3.0,
    256: 2.5,
}
_LN10 = np.log(10.0)


def trials_per_day(config: TriggerConfig, bin_width: float) -> np.ndarray:
    """Effective independent trials per day, per timescale of the ladder."""
    ks = config.ladder(bin_width)
    tau = np.array([TRIALS_PER_WINDOW.get(int(k), max(TRIALS_PER_WINDOW.values())) for k in ks])
    return tau * 86400.0 / (ks * bin_width)


def thresholds(
    config: TriggerConfig, bin_width: float, far_per_day: float | None = None
) -> np.ndarray:
    """Significance each timescale must reach for ``far_per_day`` (default: the config's)."""
    far = config.far_per_day if far_per_day is None else far_per_day
    trials = trials_per_day(config, bin_width)
    return p_to_sigma(far / (len(trials) * trials))


def log10_far(config: TriggerConfig, bin_width: float) -> Callable[[int, np.ndarray], np.ndarray]:
    """``f(k, S)``: log10 of the false-alarm rate per day of a window (whole ladder)."""
    ks = config.ladder(bin_width)
    per = dict(
        zip(ks.tolist(), (len(ks) * trials_per_day(config, bin_width)).tolist(), strict=True)
    )

    def f(k: int, sig: np.ndarray) -> np.ndarray:
        return np.log10(per[int(k)]) + special.log_ndtr(-np.asarray(sig, dtype=float)) / _LN10

    return f


def measure_trials(
    maxima: np.ndarray, days: float, window_seconds: float, sigmas: np.ndarray
) -> np.ndarray:
    """tau per threshold, from the cluster maxima of one timescale on ``days`` of background."""
    maxima = np.asarray(maxima)
    counts = np.array([(maxima >= s).sum() for s in sigmas], dtype=float)
    return counts / days / (86400.0 / window_seconds) / special.ndtr(-np.asarray(sigmas))


def main(days: int = 12, bin_width: float = 0.05, seed: int = 300) -> None:  # pragma: no cover
    """Measure tau_k on simulated SPI-ACS-like background: ``python -m detectors.calibration``."""
    from detectors.engine import Engine
    from detectors.simulation import acs_background

    cfg = TriggerConfig()
    sigmas = np.array([3.75, 4.0, 4.25, 4.5])
    maxima: dict[int, list[float]] = {}
    for d in range(days):
        t, c = acs_background(86400.0, bin_width, seed=seed + d)
        eng = Engine(cfg, bin_width, 3.5)
        seen = []
        add = eng.grouper.add
        eng.grouper.add = lambda cands, end, add=add, seen=seen: (
            seen.extend(cands),
            add(cands, end),
        )
        for a in range(0, t.size, 1 << 16):
            eng.push(t[a : a + (1 << 16)], bin_width, c[a : a + (1 << 16)])
        eng.flush()
        rows = np.array([(x.start, x.k, x.significance) for x in seen])
        for k in np.unique(rows[:, 1]):
            r = rows[rows[:, 1] == k]
            r = r[np.argsort(r[:, 0])]
            new = np.concatenate(([True], r[1:, 0] > r[:-1, 0] + k + eng.merge))
            idx = np.cumsum(new) - 1
            mx = np.full(idx[-1] + 1, -np.inf)
            np.maximum.at(mx, idx, r[:, 2])
            maxima.setdefault(int(k), []).extend(mx.tolist())
    for k in sorted(maxima):
        m = np.array(maxima[k])
        per = measure_trials(m, days, k * bin_width, sigmas)
        counts = [int((m >= s).sum()) for s in sigmas]
        print(f"k={k:4d}: clusters {counts} tau {np.round(per, 2).tolist()}")


if __name__ == "__main__":  # pragma: no cover
    main()
