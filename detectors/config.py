"""Rate-trigger settings, in seconds, with the defaults used by ``nrt detect``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TriggerConfig:
    """Settings of the multi-timescale rate trigger.

    Timescales are powers of two of the bin width from one bin up to
    ``max_timescale``; each is searched with ``phases`` window offsets. The
    background of a window is the mean rate over ``background`` seconds ending
    ``gap`` seconds before it; the excess variance is measured over the
    ``variance_window`` seconds before that. Long windows get more: their
    background spans ``background_windows`` window lengths (up to
    ``max_background`` s; only where that stretch has no invalid bin and its
    rate agrees with the ``background`` one within ``background_consistency``
    sigma, else the ``background`` one; not in bracketed mode), and their excess variance is
    measured over ``variance_windows`` window lengths, so that neither the
    background estimate's noise nor the variance estimate's noise costs much
    sensitivity. Windows of at least ``decaying_from`` seconds weigh their
    second half by ``tail_weight`` (a fast-rise, slow-decay shape closer to a
    long burst's than a boxcar; 1 makes them boxcars). Shorter windows of
    4 bins or more weigh ``taper_edge`` of their length at each end by
    ``taper_weight`` (a trapezoid: a smooth pulse of any width between two
    timescales of the ladder is matched better than by either boxcar; 1 makes
    them boxcars). Windows more than
    ``variance_exclusion_sigma`` above background (against the white-noise
    floor), and the later windows whose background may hold them, are left out
    of the excess-variance estimate (``inf`` keeps them: a bright burst then
    inflates F for the whole variance window). A bin more than ``spike_sigma``
    up is a cosmic-ray spike (replaced by its background) when its two neighbours'
    significances sum to less than ``max(spike_neighbour_sigma,
    spike_neighbour_fraction * its own)`` and the ``2 * spike_reach`` bins around it
    sum to less than ``sqrt(spike_reach)`` times that, or ``spike_context_sigma``
    sigma of their sum, whichever is higher (a burst's peak whose next bin fell low
    keeps it; ``spike_reach = 1``: the two neighbours only). ``far_per_day`` is the only
    threshold: it is turned into a significance with the calibrated trials
    factor (see :mod:`detectors.calibration`). ``bracket`` also takes the
    background after each window (BAT-style bracketing; for batch runs, or
    streaming with ``gap + background`` seconds of latency). ``prompt`` also
    reports each new group's first window at once, flagged ``preliminary``: the
    full trigger waits for the group to end and for ``post_window`` after it.
    """

    far_per_day: float = 1.0
    max_timescale: float = 13.0
    phases: int = 4
    max_step: float = 1.6
    background: float = 40.0
    gap: float = 2.0
    variance_window: float = 600.0
    background_windows: float = 20.0
    max_background: float = 320.0
    background_consistency: float = 3.0
    variance_windows: float = 200.0
    decaying_from: float = 5.0
    tail_weight: float = 0.5
    taper_edge: float = 0.25
    taper_weight: float = 0.4
    min_variance_window: float = 30.0
    min_background_fraction: float = 0.5
    residual_clip: float = 9.0
    variance_exclusion_sigma: float = 5.0
    spike_sigma: float = 3.5
    spike_neighbour_sigma: float = 2.5  # limit on the sum of the two neighbours' sigmas
    spike_neighbour_fraction: float = 0.5
    spike_reach: int = 2
    spike_context_sigma: float = 3.0
    merge_gap: float = 1.0
    post_window: float = 20.0
    variation_fraction: float = 0.8
    variation_sigma: float = 5.0
    dropout_expected_counts: float = 20.0
    saturation_run: int = 4
    max_fill: float = 3600.0
    bracket: bool = False
    prompt: bool = False

    def __post_init__(self) -> None:
        if not self.far_per_day > 0:
            raise ValueError(f"far_per_day must be > 0 (got {self.far_per_day})")
        if self.spike_reach < 1:
            raise ValueError(f"spike_reach must be >= 1 bin (got {self.spike_reach})")
        if self.phases < 1:
            raise ValueError(f"phases must be >= 1 (got {self.phases})")
        if not (0 <= self.taper_edge < 0.5 and self.taper_weight > 0):
            raise ValueError(
                "taper_edge must be in [0, 0.5) and taper_weight > 0 "
                f"(got {self.taper_edge}, {self.taper_weight})"
            )
        if not self.variance_exclusion_sigma**2 > self.residual_clip:
            raise ValueError(
                "variance_exclusion_sigma must be above sqrt(residual_clip) = "
                f"{self.residual_clip**0.5:g} (got {self.variance_exclusion_sigma})"
            )
        for name in ("max_timescale", "background", "variance_window", "post_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds (got {getattr(self, name)})")

    def ladder(self, bin_width: float) -> np.ndarray:
        """Window lengths in bins: 1, 2, 4, ... up to ``max_timescale``."""
        kmax = max(1, int(np.floor(self.max_timescale / bin_width + 1e-9)))
        return 2 ** np.arange(int(np.floor(np.log2(kmax))) + 1)

    def window_weights(self, k: int, bin_width: float) -> tuple[tuple[int, int], float]:
        """``((offset, length), rest)``: a window of ``k`` bins weighs 1 on that core, ``rest``
        on its other bins (``rest = 1``: a boxcar)."""
        if k >= 2 and k * bin_width >= self.decaying_from:
            return (0, k // 2), self.tail_weight
        edge = round(k * self.taper_edge)
        if edge >= 1 and k - 2 * edge >= 1:
            return (edge, k - 2 * edge), self.taper_weight
        return (0, k), 1.0

    def step(self, k: int, bin_width: float) -> int:
        """Offset (bins) between successive windows of ``k`` bins: ``k / phases``, at most
        ``max_step`` seconds (more phases on long windows, which are cheap)."""
        return max(1, min(int(k) // self.phases, self.bins(self.max_step, bin_width)))

    def background_seconds(self, window: float) -> float:
        """Background length for a window of ``window`` seconds (before it)."""
        if self.bracket:
            return self.background
        return max(self.background, min(self.max_background, self.background_windows * window))

    def variance_seconds(self, window: float) -> float:
        """How far back the excess variance of ``window``-second windows is measured."""
        return max(self.variance_window, self.variance_windows * window)

    def bins(self, seconds: float, bin_width: float) -> int:
        """A duration in whole bins (at least one)."""
        return max(1, round(seconds / bin_width))
