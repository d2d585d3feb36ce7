"""A light curve made ready for the rate trigger: validated arrays and notes.

Bad bins are not errors: NaN counts, zero or negative widths or exposure, and
bins outside the good-time intervals become invalid bins, which the trigger
treats as gaps (no window crosses them, no background is taken from them).
Each kind of bad bin is counted in ``notes`` so ``nrt detect`` can say what it
ignored. What cannot be used at all (no valid bin, time going backwards, a
light curve shorter than the background window) raises
:class:`DetectorInputError`, naming the file, the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors.config import TriggerConfig

if TYPE_CHECKING:
    from nrt.telemetry.lightcurves import LightCurve


class DetectorInputError(ValueError):
    """Input the trigger cannot use: ``"<file>: <field>: <problem>; fix: <fix>"``."""

    def __init__(self, file: str, field: str, problem: str, fix: str) -> None:
        self.file, self.field, self.problem, self.fix = file, field, problem, fix
        super().__init__(f"{file}: {field}: {problem}; fix: {fix}")


@dataclass(frozen=True, eq=False)
class Series:
    """Arrays the engine takes, plus the nominal bin width and what was ignored."""

    time: np.ndarray
    width: np.ndarray
    counts: np.ndarray
    exposure: np.ndarray
    valid: np.ndarray
    bin_width: float
    notes: tuple[str, ...]


def prepare(
    time: Any,
    counts: Any,
    width: Any = None,
    exposure: Any = None,
    gti: Any = None,
    *,
    source: str = "<arrays>",
    config: TriggerConfig | None = None,
) -> Series:
    """Validate arrays of bin starts, counts, widths, exposure and GTIs (N, 2)."""
    cfg = config or TriggerConfig()
    time = np.asarray(time, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if time.ndim != 1 or counts.shape != time.shape:
        raise DetectorInputError(
            source,
            "TIME/COUNTS",
            f"shapes {time.shape} and {counts.shape} differ",
            "one value per bin",
        )
    if width is None:
        width = np.diff(time, append=np.nan)
        width[-1] = np.nanmedian(width) if len(width) > 1 else np.nan
    width = np.broadcast_to(np.asarray(width, dtype=float), time.shape)
    exposure = (
        width if exposure is None else np.broadcast_to(np.asarray(exposure, float), time.shape)
    )
    notes: list[str] = []
    valid = np.ones(time.shape, bool)

    def drop(mask: np.ndarray, what: str) -> None:
        nonlocal valid
        n = int(np.count_nonzero(mask & valid))
        if n:
            notes.append(f"{n} bins {what}: treated as gaps")
        valid &= ~mask

    if not np.isfinite(time).all():
        raise DetectorInputError(source, "TIME", "has NaN or infinite values", "drop those rows")
    drop(~np.isfinite(counts), "with NaN or infinite counts")
    drop(~(width > 0), "with zero or negative width")
    drop(~(exposure > 0) & np.isfinite(exposure), "with zero exposure")
    drop(~np.isfinite(exposure), "with NaN exposure")
    drop(np.isfinite(counts) & (counts < 0), "with negative counts")
    if gti is not None and len(gti):
        gti = np.asarray(gti, dtype=float).reshape(-1, 2)
        mid = time + 0.5 * np.where(width > 0, width, 0)
        inside = np.zeros(time.shape, bool)
        for a, b in gti:
            inside |= (mid >= a) & (mid < b)
        drop(~inside, "outside the good-time intervals")
    if not valid.any():
        raise DetectorInputError(
            source, "COUNTS", "no usable bin", "check the file's columns and GTIs"
        )
    good_w = width[valid]
    bin_width = float(np.median(good_w))
    order_bad = np.flatnonzero(np.diff(time) <= 0)
    if order_bad.size:
        i = int(order_bad[0])
        raise DetectorInputError(
            source,
            "TIME",
            f"is not increasing at row {i + 1} ({time[i]!r} then {time[i + 1]!r})",
            "sort the bins and remove duplicates",
        )
    span = float(time[valid][-1] + width[valid][-1] - time[valid][0])
    need = cfg.gap + cfg.background * cfg.min_background_fraction + bin_width
    if span < need:
        raise DetectorInputError(
            source,
            "TIME",
            f"covers {span:.3g} s, shorter than the {need:.3g} s the trigger needs "
            f"(background {cfg.background:g} s x {cfg.min_background_fraction:g} + gap {cfg.gap:g} s "
            "before the first window)",
            "give a longer light curve (or a shorter TriggerConfig.background)",
        )
    return Series(
        time=time,
        width=np.where(valid, width, bin_width),
        counts=np.where(valid, counts, 0.0),
        exposure=np.where(valid, exposure, 0.0),
        valid=valid,
        bin_width=bin_width,
        notes=tuple(notes),
    )


def from_lightcurve(lc: LightCurve, config: TriggerConfig | None = None) -> Series:
    """A :class:`nrt.telemetry.lightcurves.LightCurve` as a trigger series."""
    return prepare(
        lc.time, lc.counts, lc.width, lc.exposure, lc.gti, source=lc.source, config=config
    )


def utc_converter(lc: LightCurve):
    """File seconds -> UTC ISO string, through the light curve's own time reference."""

    def convert(seconds: float) -> str:
        return lc.to_time(seconds).utc.isot

    return convert
