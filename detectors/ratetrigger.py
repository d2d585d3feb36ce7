"""Public rate-trigger API: streaming (:class:`RateTrigger`) and batch (:func:`detect`).

Both drive the same :class:`detectors.engine.Engine`; batch feeds the whole
series in large blocks, streaming whatever chunks arrive, and they give the same
triggers (tested). Energy bands for event data are in :func:`detect_events`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from detectors.calibration import far_per_day, threshold
from detectors.config import TriggerConfig
from detectors.engine import Engine
from detectors.grouping import GroupReport
from detectors.trigger import Trigger

TimeToUTC = Callable[[float], str]


class RateTrigger:
    """Streaming trigger for one instrument/band: ``push`` chunks, ``flush`` at the end."""

    def __init__(
        self,
        instrument: str,
        bin_width: float,
        config: TriggerConfig | None = None,
        *,
        band: tuple[float, float] | None = None,
        time_to_utc: TimeToUTC | None = None,
        pointing: str | None = None,
        threshold_sigma: float | None = None,
    ):
        self.config = config or TriggerConfig()
        self.instrument = instrument
        self.band = band
        self.pointing = pointing
        self.bin_width = float(bin_width)
        self.threshold = (
            threshold(self.config, self.bin_width) if threshold_sigma is None else threshold_sigma
        )
        self.engine = Engine(self.config, self.bin_width, self.threshold)
        self.time_to_utc = time_to_utc

    def push(self, time, width, counts, exposure=None, valid=None) -> list[Trigger]:
        """Add the next chunk of bins; return triggers whose groups are complete."""
        return [self._trigger(r) for r in self.engine.push(time, width, counts, exposure, valid)]

    def flush(self) -> list[Trigger]:
        """End of the stream: report what is still open."""
        return [self._trigger(r) for r in self.engine.flush()]

    def _trigger(self, r: GroupReport) -> Trigger:
        eng = self.engine
        t_fire = eng.time_of(r.fire_index)
        return Trigger(
            instrument=self.instrument,
            time_utc=self.time_to_utc(t_fire) if self.time_to_utc else "",
            time_met=t_fire,
            timescale=float(r.best.k * self.bin_width),
            significance=round(float(r.best.significance), 3),
            far_per_day=far_per_day(self.config, self.bin_width, r.best.significance),
            counts=float(r.best.counts),
            background=float(r.best.background),
            band=self.band,
            flags=r.flags,
            pointing=self.pointing,
        )


def nominal_width(width: np.ndarray) -> float:
    """The bin width the timescales are counted in: the median of positive widths."""
    w = np.asarray(width, dtype=float)
    w = w[np.isfinite(w) & (w > 0)]
    if not w.size:
        raise ValueError("no bin has a positive width: cannot set timescales")
    return float(np.median(w))


def detect(
    time,
    width,
    counts,
    exposure=None,
    valid=None,
    *,
    instrument: str,
    config: TriggerConfig | None = None,
    band: tuple[float, float] | None = None,
    time_to_utc: TimeToUTC | None = None,
    pointing: str | None = None,
    bin_width: float | None = None,
    block: int = 1 << 16,
    threshold_sigma: float | None = None,
) -> list[Trigger]:
    """Batch trigger over a whole series (processed in blocks to bound memory).

    ``threshold_sigma`` overrides the threshold derived from the FAR (calibration only).
    """
    time = np.asarray(time, dtype=float)
    width = np.broadcast_to(np.asarray(width, dtype=float), time.shape)
    bw = nominal_width(width) if bin_width is None else bin_width
    trig = RateTrigger(
        instrument,
        bw,
        config,
        band=band,
        time_to_utc=time_to_utc,
        pointing=pointing,
        threshold_sigma=threshold_sigma,
    )
    out: list[Trigger] = []
    for a in range(0, len(time), block):
        sl = slice(a, a + block)
        out += trig.push(
            time[sl],
            width[sl],
            np.asarray(counts)[sl],
            None if exposure is None else np.asarray(exposure)[sl],
            None if valid is None else np.asarray(valid)[sl],
        )
    return out + trig.flush()
