"""ISGRI detector layout: the 8 modules and the standard energy bands, defined once.

ISGRI's 128 x 128 pixels are read out by 8 modules (MDUs) of 64 x 32 pixels: two
halves along DETY (0-63, 64-127), four quarters along DETZ (0-31, ..., 96-127).
Module ``m = 4 * (DETY // 64) + DETZ // 32``. Health checks and rates per module,
the simulator's per-module effects and the dashboards all use these numbers.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from nrt.telemetry.codedmask import DETECTOR_PIXELS

N_MODULES = 8
MODULE_DETY = 64
MODULE_DETZ = 32

#: Standard quick-look bands (keV): light curves, and the imaging band.
STANDARD_BANDS: tuple[tuple[float, float], ...] = ((15, 40), (40, 100), (100, 300), (300, 1000))
IMAGING_BAND: tuple[float, float] = (20.0, 100.0)


def module_of(dety, detz):
    """Module number(s) of pixel(s) (arrays allowed)."""
    dety, detz = np.asarray(dety), np.asarray(detz)
    return (dety // MODULE_DETY) * (DETECTOR_PIXELS // MODULE_DETZ) + detz // MODULE_DETZ


@cache
def module_map() -> np.ndarray:
    """(128, 128) int array [DETY, DETZ] -> module number. Read-only (shared)."""
    y, z = np.meshgrid(np.arange(DETECTOR_PIXELS), np.arange(DETECTOR_PIXELS), indexing="ij")
    out = module_of(y, z).astype(np.int8)
    out.setflags(write=False)
    return out


def band_label(band: tuple[float, float]) -> str:
    """``15_40`` for (15, 40): FITS column names allow letters, digits and ``_`` only."""
    return f"{band[0]:g}_{band[1]:g}".replace(".", "p")
