"""Count rates against expectation: ISGRI per module, the SPI-ACS shield; dead time."""

from __future__ import annotations

import numpy as np

from checks.base import HealthCheck, gauge
from checks.limits import limits_for
from detectors.quicklook.layout import N_MODULES, module_map
from detectors.quicklook.pixels import cleaned
from detectors.quicklook.products import AcsSummary, DetectorMap, PointingInfo
from nrt.telemetry.pointings import TelemetryFiles


class ModuleRatesCheck(HealthCheck):
    """Each module's rate over the pointing against the expected rate.

    The expected rate is ``limits["expected_rate"]`` when configured, else the median
    of the 8 modules (a module that drifts away from the others is what this finds).
    Noisy and dead pixels count at their module's level here: they are the pixel
    check's finding, and one hot pixel must not make its whole module look wrong.
    """

    check = "module_rates"
    limits = limits_for("module_rates")
    input_map = DetectorMap
    input_info = PointingInfo

    def main(self) -> None:
        counts = cleaned(self.input_map.counts)
        modules = module_map()
        ontime = self.input_info.ontime
        rates = np.array([counts[modules == m].sum() / ontime for m in range(N_MODULES)])
        expected = self.limits.get("expected_rate")
        expected = float(np.median(rates)) if expected is None else float(expected)
        items, gauges = [], []
        for m, rate in enumerate(rates):
            n = counts[modules == m].sum()
            ratio = rate / expected if expected > 0 else None
            err = np.sqrt(max(n, 1)) / ontime / expected if expected > 0 else None
            items.append(self.item("rate_ratio", ratio, module=str(m), error=err))
            gauges += [
                gauge("count_rate_per_second", float(rate), module=str(m)),
                gauge("count_rate_expected_per_second", expected, module=str(m)),
            ]
        gauges.append(gauge("count_rate_per_second", float(rates.sum()), module="all"))
        self.finish(items, gauges)


class ShieldRateCheck(HealthCheck):
    """The SPI-ACS mean rate against expectation, and its scatter against Poisson."""

    check = "shield_rate"
    instrument = "SPI-ACS"
    limits = limits_for("shield_rate")
    input_acs = AcsSummary

    def main(self) -> None:
        acs = self.input_acs
        expected = float(self.limits["expected_rate"])
        items = [
            self.item("rate_ratio", acs.mean_rate / expected, module="shield"),
            self.item("excess_variance", acs.excess_variance, module="shield"),
        ]
        gauges = [
            gauge("count_rate_per_second", acs.mean_rate, module="shield"),
            gauge("count_rate_expected_per_second", expected, module="shield"),
        ]
        self.finish(items, gauges)


class DeadTimeCheck(HealthCheck):
    """ISGRI dead-time fraction from housekeeping (the first of ``columns`` present)."""

    check = "dead_time"
    limits = limits_for("dead_time")
    input_hk = TelemetryFiles

    def main(self) -> None:
        cols = self.input_hk.columns
        name = next((c for c in self.limits["columns"] if c in cols), None)
        if name is None:
            item = self.item(
                "dead_time",
                None,
                message=f"no dead-time column in housekeeping (looked for {self.limits['columns']})",
            )
            self.finish([item | {"status": 1}], [])
            return
        value = float(np.mean(cols[name]))
        self.finish([self.item("dead_time", value)], [gauge("dead_time_ratio", value)])
