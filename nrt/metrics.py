"""Every Prometheus metric nrt exports, declared once (DESIGN.md section 8).

Names carry the ``nrt_`` prefix and base units; labels take only bounded values
(element class names, tier names, outcomes), never pointing ids, file names or
alert ids. Everything registers in ``REGISTRY``, which the daemon serves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

# No `<name>_created` series: they double the series count and nothing here reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: Latency buckets from 1 ms to 10 min, for run times.
SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    600,
)

# ---------------------------------------------------------------- engine

ELEMENT_RUNS = Counter(
    "nrt_element_runs",
    "Element main() executions by outcome (ok, expected_failure, error).",
    ["element", "outcome"],
    registry=REGISTRY,
)
ELEMENT_RUN_SECONDS = Histogram(
    "nrt_element_run_seconds",
    "Wall time of element main() executions.",
    ["element"],
    buckets=SECONDS_BUCKETS,
    registry=REGISTRY,
)
CACHE_REQUESTS = Counter(
    "nrt_cache_requests",
    "Cache lookups by tier and result (hit, miss, corrupt, expired, skipped_costly).",
    ["tier", "result"],
    registry=REGISTRY,
)
CACHE_BYTES = Gauge(
    "nrt_cache_bytes",
    "Bytes held by each cache tier.",
    ["tier"],
    registry=REGISTRY,
)
CACHE_WRITE_ERRORS = Counter(
    "nrt_cache_write_errors",
    "Results that could not be written to a cache tier (full disk, permissions).",
    ["tier"],
    registry=REGISTRY,
)

STATE_REPAIRS = Counter(
    "nrt_state_repairs",
    "State databases found damaged and repaired, by database (index, outbox, ingest, "
    "localizations) and action: rebuilt (the cache index, from the manifests), salvaged "
    "(every readable outbox row copied into a fresh outbox), reset (the ingest log or the "
    "pending-localization record started afresh). The damaged file is kept beside the new one.",
    ["database", "action"],
    registry=REGISTRY,
)
#: (database, action) pairs STATE_REPAIRS takes (the only ones: bounded, pre-set to 0).
STATE_REPAIR_KINDS = (
    ("index", "rebuilt"),
    ("outbox", "salvaged"),
    ("ingest", "reset"),
    ("localizations", "reset"),
)

# ---------------------------------------------------------------- pipeline
#
# Label values are bounded: kinds (acs, isgri, hk, pointing), outcomes, sources
# (inbox, mqtt), instruments, alert types, sink names from the configuration,
# pointing states. Never pointing ids, file names or alert ids.

#: Latency buckets from 1 ms to 10 min, for ingest and alert latencies.
LATENCY_BUCKETS = SECONDS_BUCKETS

TELEMETRY_FILES = Counter(
    "nrt_telemetry_files",
    "Telemetry files handled, by kind and outcome (accepted, duplicate, quarantined).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
TELEMETRY_LAG = Gauge(
    "nrt_telemetry_lag_seconds",
    "Wall-clock time now minus the data time of the newest telemetry received, by kind.",
    ["kind"],
    registry=REGISTRY,
)
INGEST_LATENCY = Histogram(
    "nrt_ingest_latency_seconds",
    "Time from a telemetry file appearing (inbox rename, MQTT arrival) to its chunk being queued.",
    ["source"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TRIGGER_EVALUATIONS = Counter(
    "nrt_trigger_evaluations",
    "Rate-trigger test windows evaluated, by instrument.",
    ["instrument"],
    registry=REGISTRY,
)
TRIGGERS = Counter(
    "nrt_triggers",
    "Burst triggers found (grouped excesses above threshold), by instrument.",
    ["instrument"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "nrt_alerts",
    "Alerts written to the outbox, by instrument and type (initial, update, retraction).",
    ["instrument", "type"],
    registry=REGISTRY,
)
ALERT_LATENCY = Histogram(
    "nrt_alert_latency_seconds",
    "Time from the data that triggered an alert to the broker acknowledging it.",
    ["instrument"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "nrt_outbox_pending",
    "Alert messages written to the outbox and not yet acknowledged, by sink.",
    ["sink"],
    registry=REGISTRY,
)
POINTINGS = Gauge(
    "nrt_pointings",
    "Pointings known to the tracker, by state (open, covered, grace, announced).",
    ["state"],
    registry=REGISTRY,
)
QUICKLOOK_RUNS = Counter(
    "nrt_quicklook_runs",
    "Per-pointing quick-look graphs run, by outcome (ok, expected_failure, error).",
    ["outcome"],
    registry=REGISTRY,
)
QUICKLOOK_SECONDS = Histogram(
    "nrt_quicklook_seconds",
    "Wall time of a per-pointing quick-look graph (computed or restored from cache).",
    buckets=SECONDS_BUCKETS,
    registry=REGISTRY,
)

# ---------------------------------------------------------------- instrument health
#
# Energies are in electronvolts (the base unit: no kilo prefix). ``module`` is an ISGRI
# module number "0".."7", "shield" for SPI-ACS, or "all" for the whole instrument;
# ``line`` is a calibration line ("59.3", "511"); ``parameter`` a housekeeping column
# named in the configuration; ``check`` a check name from ``checks``.

CHECK_STATUS = Gauge(
    "nrt_check_status",
    "Health check status of the last pointing: 0 ok, 1 warning, 2 alarm.",
    ["instrument", "module", "check"],
    registry=REGISTRY,
)
CHECK_LAST_RUN = Gauge(
    "nrt_check_last_run_timestamp_seconds",
    "Unix time a health check result was last published.",
    ["instrument", "check"],
    registry=REGISTRY,
)
LINE_POSITION = Gauge(
    "nrt_calibration_line_position_electronvolts",
    "Fitted position of a calibration line on the uncalibrated energy scale.",
    ["instrument", "line"],
    registry=REGISTRY,
)
LINE_WIDTH = Gauge(
    "nrt_calibration_line_width_electronvolts",
    "Fitted FWHM of a calibration line (energy resolution), calibrated scale.",
    ["instrument", "line"],
    registry=REGISTRY,
)
LINE_DRIFT = Gauge(
    "nrt_calibration_line_drift_electronvolts",
    "Line position minus its reference (the nominal energy or the previous fit).",
    ["instrument", "line"],
    registry=REGISTRY,
)
LINE_LIMIT = Gauge(
    "nrt_calibration_line_limit_electronvolts",
    "Configured limits of calibration line position and width (bound: "
    "warning_low, warning_high, alarm_low, alarm_high).",
    ["instrument", "line", "quantity", "bound"],
    registry=REGISTRY,
)
GAIN = Gauge(
    "nrt_calibration_gain_ratio",
    "Detector gain from the calibration fit (measured energy per true energy).",
    ["instrument"],
    registry=REGISTRY,
)
GAIN_OFFSET = Gauge(
    "nrt_calibration_offset_electronvolts",
    "Energy offset from the calibration fit.",
    ["instrument"],
    registry=REGISTRY,
)
COUNT_RATE = Gauge(
    "nrt_count_rate_per_second",
    "Mean count rate over the last pointing, per detector module (or shield).",
    ["instrument", "module"],
    registry=REGISTRY,
)
COUNT_RATE_EXPECTED = Gauge(
    "nrt_count_rate_expected_per_second",
    "Expected count rate the measured one is checked against.",
    ["instrument", "module"],
    registry=REGISTRY,
)
NOISY_PIXELS = Gauge(
    "nrt_noisy_pixels",
    "Pixels whose counts are Poisson outliers above their module's level.",
    ["instrument", "module"],
    registry=REGISTRY,
)
DEAD_PIXELS = Gauge(
    "nrt_dead_pixels",
    "Pixels whose counts are Poisson outliers below their module's level.",
    ["instrument", "module"],
    registry=REGISTRY,
)
DEAD_TIME = Gauge(
    "nrt_dead_time_ratio",
    "Mean dead-time fraction over the last pointing.",
    ["instrument"],
    registry=REGISTRY,
)
HOUSEKEEPING = Gauge(
    "nrt_housekeeping_value",
    "Mean of a housekeeping parameter over the last pointing (its own unit).",
    ["instrument", "parameter"],
    registry=REGISTRY,
)
HOUSEKEEPING_SLOPE = Gauge(
    "nrt_housekeeping_slope_per_second",
    "Linear trend of a housekeeping parameter over the last pointing (its unit per second).",
    ["instrument", "parameter"],
    registry=REGISTRY,
)

#: What a check result may set: gauge name (without prefix) -> gauge.
HEALTH_GAUGES: dict[str, Gauge] = {
    g._name.removeprefix("nrt_"): g
    for g in (
        LINE_POSITION,
        LINE_WIDTH,
        LINE_DRIFT,
        LINE_LIMIT,
        GAIN,
        GAIN_OFFSET,
        COUNT_RATE,
        COUNT_RATE_EXPECTED,
        NOISY_PIXELS,
        DEAD_PIXELS,
        DEAD_TIME,
        HOUSEKEEPING,
        HOUSEKEEPING_SLOPE,
    )
}


#: (instrument, check) -> the series its last report set (so a vanished one is removed).
_PUBLISHED: dict[tuple[str, str], set[tuple[Gauge, tuple[str, ...]]]] = {}
_PUBLISHED_LOCK = threading.Lock()


def publish_check(report: Mapping[str, Any], timestamp: float | None = None) -> None:
    """Put one health check result into the gauges (the daemon calls this per pointing).

    ``report`` is a check element's ``report`` output: ``instrument``, ``check``,
    ``modules`` (module -> status 0/1/2) and ``gauges`` (a list of ``{"metric": name
    without the nrt_ prefix, "labels": {...}, "value": number}``). A gauge or label set
    that is not declared here is an error, so a check cannot invent unbounded series
    (nothing is set then). Series the same check set last time and not now are removed,
    so a housekeeping column or a module that disappears does not leave a frozen value.
    """
    instrument, check = str(report["instrument"]), str(report["check"])
    series: set[tuple[Gauge, tuple[str, ...]]] = set()
    for module, status in report.get("modules", {}).items():
        if int(status) not in (0, 1, 2):
            raise ValueError(f"check {check}: status {status!r} of module {module} is not 0, 1, 2")
        series.add((CHECK_STATUS, (instrument, str(module), check)))
    values: dict[tuple[Gauge, tuple[str, ...]], float] = {}
    for item in report.get("gauges", []):
        gauge = HEALTH_GAUGES.get(item["metric"])
        if gauge is None:
            raise ValueError(
                f"check {check}: unknown gauge {item['metric']!r}; declared: {sorted(HEALTH_GAUGES)}"
            )
        labels = {"instrument": instrument, **{k: str(v) for k, v in item["labels"].items()}}
        if set(labels) != set(gauge._labelnames):
            raise ValueError(
                f"check {check}: gauge {item['metric']} takes labels {gauge._labelnames}, "
                f"got {sorted(labels)}"
            )
        value = item["value"]
        key = (gauge, tuple(labels[n] for n in gauge._labelnames))
        values[key] = float("nan") if value is None else float(value)
    # everything validated: now set, and drop what this check published last time but not now
    with _PUBLISHED_LOCK:
        for module, status in report.get("modules", {}).items():
            CHECK_STATUS.labels(instrument, str(module), check).set(int(status))
        for (gauge, labelvalues), value in values.items():
            gauge.labels(*labelvalues).set(value)
        current = series | set(values)
        for gauge, labelvalues in _PUBLISHED.get((instrument, check), set()) - current:
            gauge.remove(*labelvalues)
        _PUBLISHED[(instrument, check)] = current
    CHECK_LAST_RUN.labels(instrument, check).set(time.time() if timestamp is None else timestamp)


# ---------------------------------------------------------------- exposition


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9108``, ``:9108`` for all interfaces) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(
            f"metrics listen address {listen!r} must be host:port, e.g. 127.0.0.1:9108"
        )
    return (host.strip("[]") or "0.0.0.0"), int(port)


def serve(listen: str = "127.0.0.1:9108") -> MetricsServer:
    """Serve REGISTRY at ``http://listen/metrics`` from a background thread.

    The thread only formats the registry (no event loop involvement), so it is safe
    beside asyncio. ``port`` 0 picks a free port (see ``MetricsServer.port``).
    """
    host, port = parse_listen(listen)
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsServer(server, thread)


class MetricsServer:
    """A running exposition server: ``port`` and ``stop()``."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def exposition() -> bytes:
    """The text exposition of REGISTRY (what ``/metrics`` serves)."""
    return generate_latest(REGISTRY)


def cache_reuse() -> dict[str, int]:
    """Element runs and cache hits by tier so far in this process, for run summaries
    (``nrt replay``, ``nrt demo``): take it before and after, and subtract."""
    found = {"computed": 0}
    for sample in ELEMENT_RUNS.collect()[0].samples:
        if sample.name.endswith("_total"):
            found["computed"] += int(sample.value)
    for sample in CACHE_REQUESTS.collect()[0].samples:
        if sample.name.endswith("_total") and sample.labels["result"] == "hit":
            key = f"{sample.labels['tier']} hits"
            found[key] = found.get(key, 0) + int(sample.value)
    return found


# ---------------------------------------------------------------- known label values
#
# Counters whose label values are known in advance start at 0, so dashboards and
# alerting rules see "none so far" rather than "no data" (gauges are not pre-set:
# a lag or a rate of 0 would be a false statement).

KNOWN_TIERS = ("memory", "local")
KNOWN_INSTRUMENTS = ("SPI-ACS", "ISGRI")


def _initialize_counters() -> None:
    for tier in KNOWN_TIERS:
        CACHE_WRITE_ERRORS.labels(tier)
        for result in ("hit", "miss", "corrupt"):
            CACHE_REQUESTS.labels(tier, result)
    for database, action in STATE_REPAIR_KINDS:
        STATE_REPAIRS.labels(database, action)
    for outcome in ("ok", "expected_failure", "error"):
        QUICKLOOK_RUNS.labels(outcome)
    for kind in ("acs", "isgri", "hk", "pointing"):
        for outcome in ("accepted", "duplicate", "quarantined"):
            TELEMETRY_FILES.labels(kind, outcome)
    for instrument in KNOWN_INSTRUMENTS:
        TRIGGERS.labels(instrument)
        for kind in ("initial", "update", "retraction"):
            ALERTS.labels(instrument, kind)


_initialize_counters()
