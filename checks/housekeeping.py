"""Housekeeping parameters against their limits, and their trend.

For each parameter configured in ``limits["parameters"]`` (``{column: {"warning":
[lo, hi], "alarm": [lo, hi]}}``): its minimum and maximum over the pointing are
graded (an excursion of a few seconds is caught), and a linear fit gives the
trend; if the trend would carry the last value outside the alarm range within
``horizon_seconds``, that is a warning. Every numeric column is exported as a gauge,
configured or not (the columns are fixed by the instrument, so the labels are bounded).
"""

from __future__ import annotations

import numpy as np

from checks.base import ALARM, OK, WARNING, HealthCheck, gauge, grade, outside
from checks.limits import limits_for
from nrt.telemetry.pointings import TelemetryFiles


class HousekeepingCheck(HealthCheck):
    check = "housekeeping"
    limits = limits_for("housekeeping")
    input_hk = TelemetryFiles

    def main(self) -> None:
        cols = self.input_hk.columns
        time = cols.get("TIME")
        if time is None or time.size == 0:
            self.finish(
                [self.item("housekeeping", None, message="no housekeeping") | {"status": 1}], []
            )
            return
        configured = self.limits.get("parameters", {})
        horizon = float(self.limits.get("horizon_seconds", 3600.0))
        items, gauges = [], []
        for name, values in sorted(cols.items()):
            if name == "TIME" or values.dtype.kind not in "fiub":
                continue
            v = values.astype(float)
            slope = float(np.polyfit(time - time[0], v, 1)[0]) if v.size > 2 else 0.0
            gauges += [
                gauge("housekeeping_value", float(v.mean()), parameter=name),
                gauge("housekeeping_slope_per_second", slope, parameter=name),
            ]
            lim = configured.get(name)
            if lim is None:
                continue
            lo, hi = float(v.min()), float(v.max())
            status = max(grade(lo, lim), grade(hi, lim))
            worst = hi if grade(hi, lim) >= grade(lo, lim) else lo
            item = self.item(name, worst, limits_key=None) | {"status": status, "limits": lim}
            if status:
                when = float(time[int(np.argmax(v) if worst == hi else np.argmin(v))])
                item["message"] = (
                    f"housekeeping {name} reached {worst:.6g} at t={when:.1f} s, outside its "
                    f"{'alarm' if status == ALARM else 'warning'} range"
                )
            items.append(item)
            projected = float(v[-1] + slope * horizon)
            trend = WARNING if outside(projected, lim.get("alarm")) else OK
            items.append(
                {
                    "module": "all",
                    "quantity": f"{name}_trend",
                    "value": slope,
                    "error": None,
                    "status": trend,
                    "limits": None,
                    "message": (
                        f"housekeeping {name} trending {slope:+.3g}/s: {projected:.6g} "
                        f"in {horizon:.0f} s, outside its alarm range"
                    )
                    if trend
                    else "",
                }
            )
        self.finish(items, gauges)
