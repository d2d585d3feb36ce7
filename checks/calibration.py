"""Calibration lines (59.3 and 511 keV): position, width, drift, gain.

Positions are on the raw energy scale (they show the detector's gain); widths are
FWHM on the calibrated scale (the resolution). Drift is the position minus a
reference (``reference``: the nominal energies, or the previous pointing's fitted
positions passed in by the daemon), and the slope is the change between the
pointing's two halves, per hour, which catches a jump inside a pointing.
"""

from __future__ import annotations

import math

from checks.base import HealthCheck, gauge, kev_to_ev
from checks.limits import limits_for
from detectors.quicklook.calibration import CALIBRATION_LINES, EnergyCalibration, LineFit


class CalibrationLinesCheck(HealthCheck):
    check = "calibration_lines"
    limits = limits_for("calibration_lines")
    reference = CALIBRATION_LINES
    input_lines = LineFit
    input_calibration = EnergyCalibration

    def main(self) -> None:
        fits, halves = self.input_lines.fits, self.input_lines.halves
        t_a, t_b = self.input_lines.half_times
        cal = self.input_calibration
        items, gauges = [], []
        for line, nominal in self.input_lines.lines.items():
            fit = fits[line]
            if not fit["ok"]:
                items.append(
                    self.item(
                        f"position_{line}",
                        None,
                        message=f"line {line} keV not fitted: {fit.get('reason')}",
                    )
                    | {"status": 1}
                )
                continue
            position, err = fit["position"], fit["position_err"]
            fwhm = fit["fwhm"] / cal.gain
            drift = position - self.reference.get(line, nominal)
            a, b = halves[line]
            slope = slope_err = None
            if a["ok"] and b["ok"] and t_b > t_a:
                hours = (t_b - t_a) / 3600.0
                slope = (b["position"] - a["position"]) / hours
                slope_err = math.hypot(a["position_err"], b["position_err"]) / hours
                # only a significant change counts: 3 sigma, else report but do not grade
            items += [
                self.item(f"position_{line}", position, error=err),
                self.item(f"fwhm_{line}", fwhm, error=fit["fwhm_err"] / cal.gain),
                self.item(f"drift_{line}", drift, error=err),
            ]
            if slope is not None:
                significant = abs(slope) > 3 * slope_err
                it = self.item(f"slope_{line}", slope, error=slope_err)
                if not significant:
                    it |= {"status": 0, "message": ""}
                items.append(it)
            gauges += [
                gauge("calibration_line_position_electronvolts", kev_to_ev(position), line=line),
                gauge("calibration_line_width_electronvolts", kev_to_ev(fwhm), line=line),
                gauge("calibration_line_drift_electronvolts", kev_to_ev(drift), line=line),
            ]
            for quantity, key in (("position", f"position_{line}"), ("width", f"fwhm_{line}")):
                for level, bounds in (self.limits.get(key) or {}).items():
                    for side, value in zip(("low", "high"), bounds, strict=True):
                        if value is not None:
                            gauges.append(
                                gauge(
                                    "calibration_line_limit_electronvolts",
                                    kev_to_ev(value),
                                    line=line,
                                    quantity=quantity,
                                    bound=f"{level}_{side}",
                                )
                            )
        items.append(self.item("gain", cal.gain, error=cal.gain_err))
        gauges += [
            gauge("calibration_gain_ratio", cal.gain),
            gauge("calibration_offset_electronvolts", kev_to_ev(cal.offset)),
        ]
        self.finish(items, gauges)
