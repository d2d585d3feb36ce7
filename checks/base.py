"""What every health check shares: limits, grading to 0/1/2, and the report it outputs.

A check is an element: it runs per pointing in the cached graph, so a check result is
as reproducible as a spectrum. Limits come from configuration as a mapping
``{quantity: {"warning": [low, high], "alarm": [low, high]}}`` (``None`` = unbounded);
a value outside the alarm range is status 2, outside the warning range 1, else 0.
The ``report`` output is JSON-ready: the daemon publishes it to MQTT
(``nrt/health/<instrument>``) and to the Prometheus gauges
(``nrt.metrics.publish_check``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nrt

OK, WARNING, ALARM = 0, 1, 2
STATUS_NAMES = {OK: "ok", WARNING: "warning", ALARM: "alarm"}


def outside(value: float, bounds: Any) -> bool:
    """True if `value` is outside ``[low, high]`` (either may be None)."""
    if bounds is None:
        return False
    low, high = bounds
    return (low is not None and value < low) or (high is not None and value > high)


def grade(value: float | None, limits: Mapping[str, Any] | None) -> int:
    """0, 1 or 2 for `value` against ``{"warning": [lo, hi], "alarm": [lo, hi]}``."""
    if value is None or not limits:
        return OK
    if outside(value, limits.get("alarm")):
        return ALARM
    if outside(value, limits.get("warning")):
        return WARNING
    return OK


class HealthCheck(nrt.Element):
    """Base of the checks: ``limits`` (a parameter, so changing one re-runs the check)."""

    version = "1"
    cached = True
    instrument = "ISGRI"
    check = ""
    limits: dict = {}  # a parameter: the engine copies it per instance

    def item(
        self,
        quantity: str,
        value: float | None,
        *,
        module: str = "all",
        error: float | None = None,
        limits_key: str | None = None,
        message: str = "",
    ) -> dict[str, Any]:
        """One graded measurement (``limits_key`` defaults to ``quantity``)."""
        key = limits_key or quantity
        lim = self.limits.get(key)
        status = grade(value, lim)
        if status and not message:
            message = f"{quantity} = {value:.6g} outside the {STATUS_NAMES[status]} range of {key}"
        return {
            "module": module,
            "quantity": quantity,
            "value": value,
            "error": error,
            "status": status,
            "limits": lim,
            "message": message,
        }

    def finish(self, items: list[dict[str, Any]], gauges: list[dict[str, Any]]) -> None:
        """Set the outputs: ``status`` (worst item), ``report`` (JSON-ready)."""
        modules: dict[str, int] = {}
        for it in items:
            modules[it["module"]] = max(modules.get(it["module"], OK), it["status"])
        modules.setdefault("all", OK)
        modules["all"] = max(modules.values())
        self.status = modules["all"]
        self.report = {
            "instrument": self.instrument,
            "check": self.check,
            "status": self.status,
            "modules": modules,
            "items": items,
            "gauges": gauges,
            "alarms": [it["message"] for it in items if it["status"] == ALARM],
            "warnings": [it["message"] for it in items if it["status"] == WARNING],
        }


def gauge(metric: str, value: float | None, **labels: str) -> dict[str, Any]:
    """A gauge setting for ``nrt.metrics.publish_check`` (metric name without ``nrt_``)."""
    return {"metric": metric, "labels": labels, "value": value}


def kev_to_ev(value: float | None) -> float | None:
    return None if value is None else value * 1e3
