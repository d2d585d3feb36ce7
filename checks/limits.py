"""Default limits of every check, in one mapping (overridden from the TOML configuration).

``{check: {quantity: {"warning": [low, high], "alarm": [low, high]}, ...}}``, plus a few
check settings that are not ranges (expected rates, the hot-pixel factor, HK columns).
The values are set for the simulator's instrument (``nrt simulate``); a real one needs
its own, from its calibration history.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def _rel(center: float, warn: float, alarm: float) -> dict[str, list[float]]:
    return {
        "warning": [center * (1 - warn), center * (1 + warn)],
        "alarm": [center * (1 - alarm), center * (1 + alarm)],
    }


DEFAULT_LIMITS: dict[str, dict[str, Any]] = {
    "calibration_lines": {
        # raw (uncalibrated) positions, keV: the detector gain state
        "position_59.3": _rel(59.3, 0.02, 0.035),
        "position_511": _rel(511.0, 0.02, 0.035),
        # position minus reference (nominal, or the previous pointing's fit), keV
        "drift_59.3": {"warning": [-0.6, 0.6], "alarm": [-1.2, 1.2]},
        "drift_511": {"warning": [-5.1, 5.1], "alarm": [-10.2, 10.2]},
        # range of the positions fitted in the pointing's slices, keV (1% and 2%)
        "step_59.3": {"warning": [None, 0.6], "alarm": [None, 1.2]},
        "step_511": {"warning": [None, 5.1], "alarm": [None, 10.2]},
        # FWHM on the calibrated scale, keV
        "fwhm_59.3": {"warning": [1.0, 9.0], "alarm": [0.5, 12.0]},
        "fwhm_511": {"warning": [5.0, 40.0], "alarm": [2.0, 60.0]},
        "gain": _rel(1.0, 0.02, 0.035),
    },
    "module_rates": {
        # measured / expected per module; expected = `expected_rate` or the modules' median
        "rate_ratio": {"warning": [0.8, 1.25], "alarm": [0.5, 2.0]},
        "expected_rate": None,
    },
    "shield_rate": {
        "rate_ratio": {"warning": [0.7, 1.4], "alarm": [0.4, 2.5]},
        "excess_variance": {"warning": [None, 2.0], "alarm": [None, 5.0]},
        "expected_rate": 9.0e4,
    },
    "dead_time": {
        "dead_time": {"warning": [None, 0.15], "alarm": [None, 0.3]},
        "columns": ["DEADTIME", "DEAD_TIME", "DEADTIME_FRAC"],
    },
    "pixels": {
        "noisy_pixels": {"warning": [None, 8], "alarm": [None, 64]},
        "dead_pixels": {"warning": [None, 8], "alarm": [None, 256]},
        "hot_pixels": {"warning": [None, 0], "alarm": [None, 0]},
        "hot_factor": 200.0,  # simulator: noisy pixels ~80x, a hot one ~1600x
        "false_positives": 1e-3,
    },
    "housekeeping": {
        # per HK column: ranges on its values; trend: projected over `horizon_seconds`
        "parameters": {
            "T_DET": {"warning": [-11.5, -8.5], "alarm": [-13.0, -7.0]},
            "T_ELEC": {"warning": [17.0, 25.0], "alarm": [15.0, 27.0]},
            "HV_BIAS": {"warning": [99.0, 101.0], "alarm": [98.0, 102.0]},
            "LV_5V": {"warning": [4.9, 5.1], "alarm": [4.8, 5.2]},
        },
        "horizon_seconds": 3600.0,
    },
}


def limits_for(check: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default limits of `check` updated (one level deep) with `overrides`."""
    if check not in DEFAULT_LIMITS:
        raise KeyError(f"unknown check {check!r}; checks: {', '.join(sorted(DEFAULT_LIMITS))}")
    out = copy.deepcopy(DEFAULT_LIMITS[check])
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
