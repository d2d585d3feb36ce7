"""Every Prometheus metric nrt exports, declared once (DESIGN.md section 8).

Names carry the ``nrt_`` prefix and base units; labels take only bounded values
(element class names, tier names, outcomes), never pointing ids, file names or
alert ids. Everything registers in ``REGISTRY``, which the daemon serves.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

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
