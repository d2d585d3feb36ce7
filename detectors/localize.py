"""Coded-mask localization of a burst seen by the ISGRI-like imager.

The burst interval's shadowgram minus the background interval's (scaled by
exposure) is decoded by balanced FFT cross-correlation with the mask
(:func:`nrt.telemetry.codedmask.decode`); decoding is linear, so the net sky is
the difference of the two decoded skies and its variance the scaled sum. The
most significant sky pixel is refined to sub-pixel precision with the shape of
the point-spread function: a mask element is two pixels wide, so the decoded
peak is separable and triangular (half-width two pixels), and for a triangle
the offset from the pixel centre is exactly ``(f[+1] - f[-1]) / (f[+1] + f[-1])``.
Instrument angles become RA/Dec through the pointing attitude (astropy).

The 90% error radius is ``sqrt((A / S)^2 + B^2)`` arcmin for image significance
``S``: ``A`` and ``B`` are measured by :func:`calibrate` on simulated bursts in
the fully coded field (``python -m detectors.localize``; numbers in README).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from detectors import ghosts
from detectors.trigger import Trigger
from nrt.telemetry import codedmask as cm

#: 90% containment radius model, arcmin: sqrt((ERR_A / S)^2 + ERR_B^2) (see calibrate()).
ERR_A = 13.3
ERR_B = 0.23
CONTAINMENT = 0.9


@dataclass(frozen=True)
class Localization:
    """A sky position with its 90% error radius (degrees) and image significance."""

    ra: float
    dec: float
    error_radius: float
    significance: float
    y: float
    z: float
    counts: float
    containment: float = CONTAINMENT
    #: Two positions one mask period apart explain the data equally (see detectors.ghosts):
    #: no position should be announced.
    ambiguous: bool = False

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def error_radius_arcmin(significance: float) -> float:
    """Calibrated 90% containment radius for an image significance."""
    s = max(float(significance), 1e-9)
    return math.hypot(ERR_A / s, ERR_B)


def net_sky(burst: np.ndarray, background: np.ndarray | None, scale: float) -> cm.SkyImage:
    """Decoded sky of ``burst - scale * background`` with its variance."""
    b = cm.decode(burst)
    if background is None:
        return b
    g = cm.decode(background)
    return cm.SkyImage(flux=b.flux - scale * g.flux, variance=b.variance + scale**2 * g.variance)


def peak(sky: cm.SkyImage) -> tuple[float, float, float, float]:
    """(sky_i, sky_j, significance, flux) of the source: best pixel plus triangle offset."""
    sig = sky.significance
    i, j = np.unravel_index(int(np.argmax(sig)), sig.shape)
    f = sky.flux
    n0, n1 = f.shape

    def offset(lo: float, hi: float) -> float:
        tot = lo + hi
        return float(np.clip((hi - lo) / tot, -0.5, 0.5)) if tot > 0 else 0.0

    js = slice(max(j - 1, 0), min(j + 2, n1))
    is_ = slice(max(i - 1, 0), min(i + 2, n0))
    di = offset(f[i - 1, js].sum(), f[i + 1, js].sum()) if 0 < i < n0 - 1 else 0.0
    dj = offset(f[is_, j - 1].sum(), f[is_, j + 1].sum()) if 0 < j < n1 - 1 else 0.0
    return i + di, j + dj, float(sig[i, j]), float(f[i, j])


def localize_shadowgrams(
    burst: np.ndarray,
    background: np.ndarray | None,
    scale: float,
    attitude: tuple[float, float, float],
) -> Localization:
    """Localize from detector images: burst interval, background interval and its scale."""
    si, sj, s, flux = peak(net_sky(burst, background, scale))
    # The decoded peak may be a ghost of a partially coded source one mask period away.
    net = np.asarray(burst, float) - (
        0.0 if background is None else scale * np.asarray(background, float)
    )
    variance = np.asarray(burst, float) + (
        0.0 if background is None else scale**2 * np.asarray(background, float)
    )
    alias = ghosts.resolve(net, variance, si, sj)
    y, z = alias.y, alias.z
    ra, dec = cm.instrument_to_radec(float(y), float(z), attitude)
    return Localization(
        ra=float(ra),
        dec=float(dec),
        error_radius=error_radius_arcmin(s) / 60.0,
        significance=s,
        y=float(y),
        z=float(z),
        counts=flux * cm.open_fraction() * cm.DETECTOR_PIXELS**2,
        ambiguous=alias.ambiguous,
    )


def localize_events(
    time: np.ndarray,
    dety: np.ndarray,
    detz: np.ndarray,
    interval: tuple[float, float],
    background: tuple[float, float],
    attitude: tuple[float, float, float],
    energy: np.ndarray | None = None,
    band: tuple[float, float] | None = None,
) -> Localization:
    """Localize a burst from ISGRI-like events.

    ``interval`` is the burst window (e.g. the trigger's), ``background`` a
    window without the burst (before it, typically 10x longer); ``band`` (keV)
    selects events by ``energy``.
    """
    time = np.asarray(time, dtype=float)
    sel = np.ones(time.shape, bool)
    if band is not None:
        if energy is None:
            raise ValueError("an energy band needs event energies")
        e = np.asarray(energy, dtype=float)
        sel &= (e >= band[0]) & (e < band[1])
    (a, b), (c, d) = interval, background
    if not (b > a and d > c):
        raise ValueError(f"empty interval {interval} or background {background}")
    if max(a, c) < min(b, d):
        raise ValueError(f"background {background} overlaps the burst interval {interval}")
    ins = sel & (time >= a) & (time < b)
    out = sel & (time >= c) & (time < d)
    src = cm.shadowgram(np.asarray(dety)[ins], np.asarray(detz)[ins])
    bkg = cm.shadowgram(np.asarray(dety)[out], np.asarray(detz)[out])
    return localize_shadowgrams(src, bkg, (b - a) / (d - c), attitude)


def localize_trigger(
    trigger: Trigger,
    time: np.ndarray,
    dety: np.ndarray,
    detz: np.ndarray,
    attitude: tuple[float, float, float],
    *,
    background_factor: float = 10.0,
    gap: float = 2.0,
    min_significance: float = 6.0,
) -> Localization | None:
    """Localize a rate :class:`~detectors.trigger.Trigger` from the imager's events.

    The burst interval is the trigger's best window, ending when it fired
    (``[time_met - timescale, time_met]``); the background interval is
    ``background_factor`` times longer and ends ``gap`` seconds before it. Returns
    None when the image peak is below ``min_significance`` (too few imager counts:
    the burst is outside the field of view or too faint for the imager).
    """
    b = float(trigger.time_met)
    a = b - float(trigger.timescale)
    bg = (a - gap - background_factor * (b - a), a - gap)
    loc = localize_events(time, dety, detz, (a, b), bg, attitude)
    return loc if loc.significance >= min_significance else None


# --------------------------------------------------------------------------- calibration


def simulate_shadowgrams(
    y: float,
    z: float,
    source_counts: float,
    background_per_pixel: float,
    background_scale: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Burst-interval and background-interval detector images for a point source.

    ``source_counts`` photons reach the detector through the mask (open pixels
    only); ``background_per_pixel`` is the flat background in the burst
    interval, and the background interval is ``1/background_scale`` times longer.
    """
    shade = cm.shadow(y, z) * cm.projected_area(y, z)
    per_open = source_counts / max(shade.sum(), 1e-12)
    burst = rng.poisson(per_open * shade + background_per_pixel)
    bkg = rng.poisson(np.full(shade.shape, background_per_pixel / background_scale))
    return burst, bkg


def calibrate(n: int = 600, seed: int = 4) -> dict[str, float | np.ndarray]:
    """Position errors of simulated in-FOV bursts; fits ERR_A, ERR_B for 90% containment.

    Bursts: uniform in the fully coded field, 200 to 20000 source counts on a
    background of 2 counts/pixel (background interval 10x longer), random roll.
    Returns errors (arcmin), significances, the fitted constants and the
    containment of the current model on bursts with S >= 10.
    """
    rng = np.random.default_rng(seed)
    lim = cm.FCFOV_DEG * 0.95
    errs, sigs = [], []
    for _ in range(n):
        y, z = rng.uniform(-lim, lim, 2)
        att = (rng.uniform(0, 360), rng.uniform(-80, 80), rng.uniform(0, 360))
        ra, dec = cm.instrument_to_radec(y, z, att)
        counts = 10 ** rng.uniform(2.3, 4.3)
        burst, bkg = simulate_shadowgrams(y, z, counts, 2.0, 0.1, rng)
        loc = localize_shadowgrams(burst, bkg, 0.1, att)
        errs.append(_separation_arcmin(loc.ra, loc.dec, float(ra), float(dec)))
        sigs.append(loc.significance)
    errs_a, sigs_a = np.array(errs), np.array(sigs)
    good = sigs_a >= 10
    # B: the floor at high significance; A: 90% of (err^2 - B^2) * S^2 below A^2
    hi = sigs_a >= 60
    b = float(np.quantile(errs_a[hi], 0.9)) if hi.sum() >= 10 else ERR_B
    a = float(
        np.sqrt(np.quantile(np.clip(errs_a[good] ** 2 - b**2, 0, None) * sigs_a[good] ** 2, 0.9))
    )
    model = np.hypot(a / sigs_a, b)
    return {
        "A": a,
        "B": b,
        "errors": errs_a,
        "significance": sigs_a,
        "containment": float(np.mean(errs_a[good] <= model[good])),
    }


def _separation_arcmin(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(min(1.0, max(-1.0, c)))) * 60.0


if __name__ == "__main__":  # pragma: no cover
    res = calibrate()
    e, s = res["errors"], res["significance"]
    g = s >= 10
    print(f"A = {res['A']:.2f} arcmin, B = {res['B']:.3f} arcmin ({g.sum()} bursts with S >= 10)")
    for lo, hi in ((10, 20), (20, 50), (50, 1e9)):
        m = (s >= lo) & (s < hi)
        if m.any():
            q = np.quantile(e[m], [0.5, 0.9])
            print(f"  S {lo}-{hi:g}: n={m.sum()} median {q[0]:.2f}' 90% {q[1]:.2f}'")
