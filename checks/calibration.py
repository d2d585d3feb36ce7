"""Calibration lines (59.3 and 511 keV): position, width, drift, gain.

Positions are on the raw energy scale (they show the detector's gain); widths are
FWHM on the calibrated scale (the resolution). Drift is the position minus a
reference (``reference``: the nominal energies, or the previous pointing's fitted
positions passed in by the daemon): it catches a gain change between pointings. The
step is the range of the positions fitted in the pointing's time slices (graded only
when it exceeds 5 standard errors): it catches a change inside the pointing.
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
        fits, slices = self.input_lines.fits, self.input_lines.slices
        cal = self.input_calibration
        items, gauges = [], []
        self.positions = {}
        for line, nominal in self.input_lines.lines.items():
            fit = fits[line]
            if not fit["ok"]:
                reason = f"line {line} keV not fitted: {fit.get('reason')}"
                items.append(self.item(f"position_{line}", None, message=reason) | {"status": 1})
                continue
            position, err = fit["position"], fit["position_err"]
            self.positions[line] = position
            fwhm = fit["fwhm"] / cal.gain
            drift = position - self.reference.get(line, nominal)
            items += [
                self.item(f"position_{line}", position, error=err),
                self.item(f"fwhm_{line}", fwhm, error=fit["fwhm_err"] / cal.gain),
                self.item(f"drift_{line}", drift, error=err),
            ]
            good = [s for s in slices[line] if s["ok"]]
            if len(good) >= 2:
                hi = max(good, key=lambda s: s["position"])
                lo = min(good, key=lambda s: s["position"])
                step = hi["position"] - lo["position"]
                step_err = math.hypot(hi["position_err"], lo["position_err"])
                it = self.item(f"step_{line}", step, error=step_err)
                if step < 5 * step_err:  # not significant: reported, not graded
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
