"""Public rate-trigger API: streaming (:class:`RateTrigger`) and batch (:func:`detect`).

Both drive the same :class:`detectors.engine.Engine`; batch feeds the whole
series in large blocks, streaming whatever chunks arrive, and they give the same
triggers (tested). Energy bands for event data are in :func:`detect_events`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from detectors.calibration import log10_far, thresholds
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
        self.thresholds = (
            thresholds(self.config, self.bin_width) if threshold_sigma is None else threshold_sigma
        )
        self.engine = Engine(
            self.config, self.bin_width, self.thresholds, log10_far(self.config, self.bin_width)
        )
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
            far_per_day=float(10.0**r.best.score),
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


#: Default ISGRI-like bands (keV): soft, hard and the whole range.
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((15.0, 50.0), (50.0, 300.0), (15.0, 300.0))


def detect_events(
    times,
    energies,
    *,
    bin_width: float,
    start: float | None = None,
    stop: float | None = None,
    bands: tuple[tuple[float, float], ...] = DEFAULT_BANDS,
    instrument: str,
    config: TriggerConfig | None = None,
    time_to_utc: TimeToUTC | None = None,
    pointing: str | None = None,
) -> list[Trigger]:
    """Rate trigger on event data, one light curve per energy band.

    The false-alarm budget is shared: each band runs at ``far / len(bands)``, so
    the total stays the stated rate. Triggers of different bands that fall
    within one another's windows are the same event: the most significant is kept.
    """
    cfg = config or TriggerConfig()
    times = np.asarray(times, dtype=float)
    energies = np.asarray(energies, dtype=float)
    t0 = float(times.min()) if start is None else start
    t1 = float(times.max()) + bin_width if stop is None else stop
    nbin = max(1, int(np.ceil((t1 - t0) / bin_width)))
    edges = t0 + bin_width * np.arange(nbin + 1)
    per_band = TriggerConfig(**{**cfg.__dict__, "far_per_day": cfg.far_per_day / len(bands)})
    found: list[Trigger] = []
    for lo, hi in bands:
        sel = (energies >= lo) & (energies < hi)
        counts, _ = np.histogram(times[sel], bins=edges)
        found += detect(
            edges[:-1],
            bin_width,
            counts.astype(float),
            instrument=instrument,
            config=per_band,
            band=(lo, hi),
            time_to_utc=time_to_utc,
            pointing=pointing,
            bin_width=bin_width,
        )
    # each band's FAR counts once per band in the total
    found = [replace(x, far_per_day=x.far_per_day * len(bands)) for x in found]
    return _merge_bands(found)


def _merge_bands(triggers: list[Trigger]) -> list[Trigger]:
    """Keep the most significant of triggers that overlap in time across bands."""
    kept: list[Trigger] = []
    for trig in sorted(triggers, key=lambda x: -x.significance):
        a, b = trig.time_met - trig.timescale, trig.time_met + trig.timescale
        if not any(a <= k.time_met + k.timescale and k.time_met - k.timescale <= b for k in kept):
            kept.append(trig)
    return sorted(kept, key=lambda x: x.time_met)
