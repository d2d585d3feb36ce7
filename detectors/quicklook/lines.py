"""Fitting a calibration line (Gaussian) on a linear continuum, with uncertainties.

The counts are histogrammed in a window around the line and fitted by least
squares with Pearson weights (sigma^2 = model, iterated): unlike weights from the
data (Neyman) this does not bias the line's area low when bins hold few counts.
Uncertainties are the square roots of the covariance diagonal with absolute
sigma. The starting position is found in a wide search window (so a gain jump
of tens of percent is still found), then the fit uses +-4 widths around it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _model(x: np.ndarray, area: float, mu: float, sigma: float, c0: float, c1: float, w: float):
    gauss = area * w / (sigma * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    return gauss + c0 + c1 * (x - mu)


def fit_line(
    energies: np.ndarray,
    nominal: float,
    *,
    search: float = 0.3,
    sigma_guess: float | None = None,
    min_counts: float = 50.0,
) -> dict[str, Any]:
    """Fit the line expected near `nominal` keV in `energies`.

    ``search``: half-width of the search window as a fraction of `nominal`;
    ``sigma_guess``: a first guess of the line's sigma in keV (default 4% of `nominal`);
    the fit is repeated once with the window and bins scaled to the fitted sigma. Returns a JSON-ready dict:
    ``ok``, ``position``, ``sigma``, ``fwhm``, ``area`` (line counts), each with an
    ``_err``, plus ``chi2``, ``dof``, ``reason`` when not ok.
    """
    lo, hi = nominal * (1 - search), nominal * (1 + search)
    sel = energies[(energies >= lo) & (energies < hi)]
    sigma0 = sigma_guess or 0.04 * nominal
    result: dict[str, Any] = {"ok": False, "nominal": nominal, "counts_in_window": int(sel.size)}
    if sel.size < min_counts:
        result["reason"] = f"{sel.size} events within {lo:.1f}-{hi:.1f} keV (< {min_counts:g})"
        return result
    # start: the peak of the continuum-subtracted, smoothed histogram in the search window
    width = sigma0 / 3
    edges = np.arange(lo, hi + width, width)
    hist = np.histogram(sel, edges)[0].astype(float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    edge_n = max(3, hist.size // 8)
    xs = np.r_[centres[:edge_n], centres[-edge_n:]]
    cont = np.polyval(np.polyfit(xs, np.r_[hist[:edge_n], hist[-edge_n:]], 1), centres)
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 3.0) ** 2)
    smooth = np.convolve(hist - cont, kernel / kernel.sum(), mode="same")
    mu0 = float(centres[int(np.argmax(smooth))])

    try:
        fitted = _fit(sel, mu0, sigma0)
        fitted = _fit(sel, float(fitted[0][1]), float(fitted[0][2]))  # window from the fit
    except (RuntimeError, ValueError) as exc:
        result["reason"] = f"fit did not converge: {exc}"
        return result
    popt, pcov, chi2, dof = fitted
    errs = np.sqrt(np.clip(np.diag(pcov), 0, None))
    if not np.all(np.isfinite(errs)):
        result["reason"] = "fit covariance is not finite"
        return result
    area, mu, sigma = (float(v) for v in popt[:3])
    result.update(
        ok=bool(area > 3 * errs[0]),
        position=mu,
        position_err=float(errs[1]),
        sigma=sigma,
        sigma_err=float(errs[2]),
        fwhm=sigma * FWHM_PER_SIGMA,
        fwhm_err=float(errs[2]) * FWHM_PER_SIGMA,
        area=area,
        area_err=float(errs[0]),
        chi2=chi2,
        dof=dof,
    )
    if not result["ok"]:
        result["reason"] = f"line not significant: {area:.0f} +- {errs[0]:.0f} counts"
    return result


def _fit(sel: np.ndarray, mu0: float, sigma0: float):
    """Least squares of line + linear continuum over mu0 +- 4 sigma0 in bins of sigma0 / 3."""
    width = sigma0 / 3
    flo, fhi = mu0 - 4 * sigma0, mu0 + 4 * sigma0
    fedges = np.arange(flo, fhi + width, width)
    counts = np.histogram(sel, fedges)[0].astype(float)
    x = 0.5 * (fedges[1:] + fedges[:-1])
    c_guess = max(float(np.median(np.r_[counts[:5], counts[-5:]])), 0.1)
    area_guess = max(float(counts.sum() - c_guess * counts.size), 1.0)
    p0 = [area_guess, mu0, sigma0, c_guess, 0.0]
    bounds = ([0, flo, sigma0 / 5, 0, -np.inf], [np.inf, fhi, sigma0 * 5, np.inf, np.inf])

    def f(xx, area, mu, sigma, c0, c1):
        return _model(xx, area, mu, sigma, c0, c1, width)

    weights = np.sqrt(np.maximum(counts, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        for _ in range(3):  # Pearson weights: sigma from the model, iterated
            popt, pcov = curve_fit(
                f, x, counts, p0=p0, sigma=weights, absolute_sigma=True, bounds=bounds
            )
            weights = np.sqrt(np.maximum(f(x, *popt), 1.0))
            p0 = popt
    chi2 = float(np.sum(((counts - f(x, *popt)) / weights) ** 2))
    return popt, pcov, chi2, int(counts.size - 5)
