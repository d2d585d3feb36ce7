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


class LimitsError(ValueError):
    """A limits override that cannot be used; the message names the key and the fix."""


def _check_range(where: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not value or set(value) - {"warning", "alarm"}:
        raise LimitsError(
            f"{where} = {value!r}: must be a table with 'warning' and/or 'alarm', each "
            "[low, high] (a bound may be omitted as null/none), e.g. {warning = [0, 10]}"
        )
    for level, bounds in value.items():
        ok = isinstance(bounds, list | tuple) and len(bounds) == 2
        ok = ok and all(
            b is None or (isinstance(b, int | float) and not isinstance(b, bool)) for b in bounds
        )
        if not ok or (None not in bounds and bounds[0] > bounds[1]):
            raise LimitsError(
                f"{where}.{level} = {bounds!r}: must be [low, high] numbers with low <= high"
            )


def limits_for(check: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default limits of `check` updated (one level deep) with validated `overrides`.

    Raises :class:`LimitsError` naming ``checks.<check>.<key>`` for an unknown check or
    key, or a range that is not ``{"warning": [lo, hi], "alarm": [lo, hi]}``.
    """
    if check not in DEFAULT_LIMITS:
        raise LimitsError(
            f"checks.{check}: unknown check; checks are {', '.join(sorted(DEFAULT_LIMITS))}"
        )
    out = copy.deepcopy(DEFAULT_LIMITS[check])
    for key, value in (overrides or {}).items():
        where = f"checks.{check}.{key}"
        if key not in out:
            raise LimitsError(f"{where}: unknown key; {check} takes {', '.join(sorted(out))}")
        default = out[key]
        if key == "parameters":
            if not isinstance(value, Mapping):
                raise LimitsError(f"{where}: must be a table of housekeeping column -> range")
            for column, limits in value.items():
                _check_range(f"{where}.{column}", limits)
            out[key] = {**default, **value}
        elif isinstance(default, dict):
            _check_range(where, value)
            out[key] = {**default, **value}
        else:
            if (
                default is not None
                and not isinstance(value, type(default))
                and not (isinstance(default, float) and isinstance(value, int))
            ):
                raise LimitsError(f"{where} = {value!r}: must be a {type(default).__name__}")
            out[key] = value
    return out


def validate(checks: Mapping[str, Any]) -> None:
    """Check every ``[checks.<name>]`` table of a configuration (for ``nrt config check``)."""
    for name, overrides in checks.items():
        if not isinstance(overrides, Mapping):
            raise LimitsError(f"checks.{name}: must be a table of limits")
        limits_for(name, overrides)
