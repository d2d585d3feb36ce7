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
    ``variance_window`` seconds before that. ``far_per_day`` is the only
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
    background: float = 40.0
    gap: float = 2.0
    variance_window: float = 600.0
    min_variance_window: float = 30.0
    min_background_fraction: float = 0.5
    residual_clip: float = 9.0
    spike_sigma: float = 3.5
    spike_neighbour_sigma: float = 2.0
    spike_neighbour_fraction: float = 0.5
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
        if self.phases < 1:
            raise ValueError(f"phases must be >= 1 (got {self.phases})")
        for name in ("max_timescale", "background", "variance_window", "post_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds (got {getattr(self, name)})")

    def ladder(self, bin_width: float) -> np.ndarray:
        """Window lengths in bins: 1, 2, 4, ... up to ``max_timescale``."""
        kmax = max(1, int(np.floor(self.max_timescale / bin_width + 1e-9)))
        return 2 ** np.arange(int(np.floor(np.log2(kmax))) + 1)

    def bins(self, seconds: float, bin_width: float) -> int:
        """A duration in whole bins (at least one)."""
        return max(1, round(seconds / bin_width))
