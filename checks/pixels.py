"""Noisy, hot and dead pixels: Poisson outliers in the detector map, per module.

See ``detectors.quicklook.pixels`` for the test and its false-positive rate (1e-3
falsely flagged pixels per pointing by default, under Poisson counts). A *hot*
pixel is a noisy one counting more than ``hot_factor`` times its module's level:
one is an alarm. Pixels listed in ``known`` ([DETY, DETZ] pairs: the instrument's
known noisy pixels) are reported but not graded.
"""

from __future__ import annotations

import numpy as np

from checks.base import HealthCheck, gauge
from checks.limits import limits_for
from detectors.quicklook.layout import N_MODULES, module_map
from detectors.quicklook.pixels import find_outliers
from detectors.quicklook.products import DetectorMap


class PixelCheck(HealthCheck):
    check = "pixels"
    limits = limits_for("pixels")
    known: tuple = ()
    input_map = DetectorMap

    def main(self) -> None:
        counts = self.input_map.counts
        found = find_outliers(counts, self.limits["false_positives"])
        known = np.zeros(counts.shape, dtype=bool)
        for y, z in self.known:
            known[y, z] = True
        hot = found.noisy & (counts > self.limits["hot_factor"] * np.maximum(found.level, 1.0))
        modules = module_map()
        items, gauges = [], []
        for m in range(N_MODULES):
            sel = modules == m
            noisy, dead = found.noisy & sel & ~known, found.dead & sel & ~known
            new_hot = hot & sel & ~known
            module = str(m)
            items += [
                self.item("noisy_pixels", int(noisy.sum()), module=module),
                self.item("dead_pixels", int(dead.sum()), module=module),
            ]
            hot_item = self.item("hot_pixels", int(new_hot.sum()), module=module)
            if hot_item["status"]:
                where = [[int(a), int(b)] for a, b in zip(*np.nonzero(new_hot), strict=True)]
                hot_item["message"] = f"module {m}: hot pixel(s) [DETY, DETZ] {where[:10]}"
                hot_item["pixels"] = where
            items.append(hot_item)
            gauges += [
                gauge("noisy_pixels", int((found.noisy & sel).sum()), module=module),
                gauge("dead_pixels", int((found.dead & sel).sum()), module=module),
            ]
        self.noisy = [[int(a), int(b)] for a, b in zip(*np.nonzero(found.noisy), strict=True)]
        self.dead = [[int(a), int(b)] for a, b in zip(*np.nonzero(found.dead), strict=True)]
        self.p_threshold = found.p_threshold
        self.dead_sensitive = found.dead_sensitive
        self.finish(items, gauges)
