"""The Grafana dashboards, written as data: ``python grafana/dashboards.py`` rewrites the JSON.

Three dashboards (fixed uids, the Prometheus datasource by its fixed uid
``nrt-prometheus``): pipeline performance, instrument health, alerts. The JSON files in
``grafana/dashboards/`` are what Grafana provisions; a test checks they match this file,
that every expression runs on a real Prometheus, and that every metric nrt exports is
shown somewhere or listed in ``UNSHOWN`` with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "nrt-prometheus"}
HERE = Path(__file__).resolve().parent

#: Metrics exported but deliberately not on a dashboard, and why.
UNSHOWN: dict[str, str] = {
    "python_info": "constant build information",
    "process_virtual_memory_bytes": "resident memory is the one that matters",
    "process_start_time_seconds": "restarts are visible in up and in counter resets",
    "process_max_fds": "only with process_open_fds in an incident",
    "process_open_fds": "only with process_max_fds in an incident",
}


def panel(
    title: str,
    targets: list[tuple[str, str]],
    *,
    unit: str = "short",
    kind: str = "timeseries",
    thresholds: list[tuple[float, str]] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """One panel; ``targets`` are (PromQL, legend) pairs."""
    steps = [{"color": "green", "value": None}] + [
        {"color": color, "value": value} for value, color in (thresholds or [])
    ]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], refresh: str = "30s"
) -> dict[str, Any]:
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return {
        "uid": uid,
        "title": title,
        "tags": ["nrt"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": refresh,
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def q(quantile: float, metric: str, by: str = "", window: str = "5m") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({labels}) (rate({metric}_bucket[{window}])))"


PIPELINE = dashboard(
    "nrt-pipeline",
    "nrt: pipeline",
    [
        panel(
            "Daemon up",
            [('up{job="nrt"}', "{{instance}}")],
            kind="stat",
            thresholds=[(0.5, "green")],
        ),
        panel(
            "Telemetry lag (now - data time)",
            [("max by (kind) (nrt_telemetry_lag_seconds)", "{{kind}}")],
            unit="s",
            thresholds=[(300, "orange"), (900, "red")],
        ),
        panel(
            "Telemetry files",
            [
                (
                    "sum by (kind, outcome) (rate(nrt_telemetry_files_total[5m]))",
                    "{{kind}} {{outcome}}",
                )
            ],
            unit="reqps",
        ),
        panel(
            "Ingest latency",
            [
                (q(0.5, "nrt_ingest_latency_seconds", "source"), "p50 {{source}}"),
                (q(0.99, "nrt_ingest_latency_seconds", "source"), "p99 {{source}}"),
            ],
            unit="s",
        ),
        panel(
            "Alert latency (data to broker ack)",
            [
                (q(0.5, "nrt_alert_latency_seconds", "instrument", "1h"), "p50 {{instrument}}"),
                (q(0.99, "nrt_alert_latency_seconds", "instrument", "1h"), "p99 {{instrument}}"),
            ],
            unit="s",
        ),
        panel(
            "Trigger evaluations",
            [("sum by (instrument) (rate(nrt_trigger_evaluations_total[5m]))", "{{instrument}}")],
            unit="ops",
        ),
        panel(
            "Cache hit ratio by tier",
            [
                (
                    'sum by (tier) (rate(nrt_cache_requests_total{result="hit"}[15m])) / sum by (tier) (rate(nrt_cache_requests_total[15m]))',
                    "{{tier}}",
                )
            ],
            unit="percentunit",
        ),
        panel(
            "Cache requests",
            [
                (
                    "sum by (tier, result) (rate(nrt_cache_requests_total[15m]))",
                    "{{tier}} {{result}}",
                )
            ],
            unit="reqps",
        ),
        panel("Cache size", [("nrt_cache_bytes", "{{tier}}")], unit="bytes"),
        panel(
            "Cache write errors",
            [("sum by (tier) (increase(nrt_cache_write_errors_total[1h]))", "{{tier}}")],
            thresholds=[(1, "red")],
        ),
        panel(
            "State databases repaired",
            [
                (
                    "sum by (database, action) (increase(nrt_state_repairs_total[1d]))",
                    "{{database}} {{action}}",
                )
            ],
            thresholds=[(1, "red")],
            description="Damaged SQLite state found at start and repaired (the damaged file "
            "is kept beside it): the cache index rebuilt, the outbox salvaged, the ingest log "
            "reset. Look at the disk.",
        ),
        panel(
            "Element run time (p90)",
            [(q(0.9, "nrt_element_run_seconds", "element", "1h"), "{{element}}")],
            unit="s",
        ),
        panel(
            "Element runs",
            [
                (
                    "sum by (element, outcome) (increase(nrt_element_runs_total[1h]))",
                    "{{element}} {{outcome}}",
                )
            ],
        ),
        panel(
            "Quick-look per pointing",
            [
                (q(0.5, "nrt_quicklook_seconds", "", "1h"), "p50"),
                (q(0.9, "nrt_quicklook_seconds", "", "1h"), "p90"),
            ],
            unit="s",
        ),
        panel(
            "Quick-look runs",
            [("sum by (outcome) (increase(nrt_quicklook_runs_total[1h]))", "{{outcome}}")],
        ),
        panel("Pointings by state", [("sum by (state) (nrt_pointings)", "{{state}}")]),
        panel(
            "Alert outbox pending",
            [("sum by (sink) (nrt_outbox_pending)", "{{sink}}")],
            thresholds=[(1, "orange"), (10, "red")],
        ),
        panel(
            "Process memory and CPU",
            [
                ('process_resident_memory_bytes{job="nrt"}', "resident"),
                ('rate(process_cpu_seconds_total{job="nrt"}[5m])', "cpu (s/s)"),
            ],
            unit="bytes",
        ),
    ],
)

HEALTH = dashboard(
    "nrt-health",
    "nrt: instrument health",
    [
        panel(
            "Check status (0 ok, 1 warning, 2 alarm)",
            [("max by (instrument, check) (nrt_check_status)", "{{instrument}} {{check}}")],
            kind="state-timeline",
            thresholds=[(1, "orange"), (2, "red")],
        ),
        panel(
            "Module status",
            [
                (
                    'max by (instrument, module) (nrt_check_status{module!="all"})',
                    "{{instrument}} {{module}}",
                )
            ],
            kind="state-timeline",
            thresholds=[(1, "orange"), (2, "red")],
        ),
        panel(
            "59.3 keV line position (raw scale) and limits",
            [
                ('nrt_calibration_line_position_electronvolts{line="59.3"}', "position"),
                (
                    'nrt_calibration_line_limit_electronvolts{line="59.3", quantity="position"}',
                    "{{bound}}",
                ),
            ],
            unit="ev",
        ),
        panel(
            "511 keV line position (raw scale) and limits",
            [
                ('nrt_calibration_line_position_electronvolts{line="511"}', "position"),
                (
                    'nrt_calibration_line_limit_electronvolts{line="511", quantity="position"}',
                    "{{bound}}",
                ),
            ],
            unit="ev",
        ),
        panel(
            "Line widths (FWHM) and limits",
            [
                ("nrt_calibration_line_width_electronvolts", "{{line}} keV"),
                (
                    'nrt_calibration_line_limit_electronvolts{quantity="width"}',
                    "{{line}} {{bound}}",
                ),
            ],
            unit="ev",
        ),
        panel(
            "Line drift from reference",
            [("nrt_calibration_line_drift_electronvolts", "{{line}} keV")],
            unit="ev",
        ),
        panel(
            "Gain and offset",
            [
                ("nrt_calibration_gain_ratio", "gain"),
                ("nrt_calibration_offset_electronvolts / 1000", "offset (keV)"),
            ],
        ),
        panel(
            "ISGRI module rates",
            [
                (
                    'nrt_count_rate_per_second{instrument="ISGRI", module!="all"}',
                    "module {{module}}",
                ),
                ('max(nrt_count_rate_expected_per_second{instrument="ISGRI"})', "expected"),
            ],
            unit="cps",
        ),
        panel(
            "SPI-ACS shield rate",
            [
                ('nrt_count_rate_per_second{instrument="SPI-ACS"}', "measured"),
                ('nrt_count_rate_expected_per_second{instrument="SPI-ACS"}', "expected"),
            ],
            unit="cps",
        ),
        panel(
            "Noisy and dead pixels",
            [
                ("sum by (instrument) (nrt_noisy_pixels)", "noisy"),
                ("sum by (instrument) (nrt_dead_pixels)", "dead"),
            ],
        ),
        panel(
            "Dead time",
            [("nrt_dead_time_ratio", "{{instrument}}")],
            unit="percentunit",
            thresholds=[(0.15, "orange"), (0.3, "red")],
        ),
        panel("Housekeeping", [("nrt_housekeeping_value", "{{parameter}}")]),
        panel("Housekeeping trends", [("nrt_housekeeping_slope_per_second", "{{parameter}}")]),
        panel(
            "Time since last check",
            [
                (
                    "time() - max by (instrument, check) (nrt_check_last_run_timestamp_seconds)",
                    "{{instrument}} {{check}}",
                )
            ],
            unit="s",
            kind="stat",
            thresholds=[(7200, "orange"), (21600, "red")],
        ),
    ],
    refresh="1m",
)

ALERTS = dashboard(
    "nrt-alerts",
    "nrt: alerts",
    [
        panel(
            "Alerts by type (per hour)",
            [
                (
                    "sum by (instrument, type) (increase(nrt_alerts_total[1h]))",
                    "{{instrument}} {{type}}",
                )
            ],
        ),
        panel(
            "Triggers (per hour)",
            [("sum by (instrument) (increase(nrt_triggers_total[1h]))", "{{instrument}}")],
        ),
        panel(
            "Alerts in the last 24 h",
            [
                (
                    "sum by (instrument, type) (increase(nrt_alerts_total[24h]))",
                    "{{instrument}} {{type}}",
                )
            ],
            kind="table",
            description="Per-alert ids are deliberately not metric labels: `nrt alerts list` shows them.",
        ),
        panel(
            "Alert latency (data to broker ack)",
            [(q(0.99, "nrt_alert_latency_seconds", "instrument", "24h"), "p99 {{instrument}}")],
            unit="s",
        ),
        panel(
            "Outbox pending",
            [("sum by (sink) (nrt_outbox_pending)", "{{sink}}")],
            thresholds=[(1, "orange"), (10, "red")],
        ),
        panel(
            "Trigger evaluations",
            [("sum by (instrument) (rate(nrt_trigger_evaluations_total[5m]))", "{{instrument}}")],
            unit="ops",
        ),
    ],
)

DASHBOARDS = {"nrt-pipeline.json": PIPELINE, "nrt-health.json": HEALTH, "nrt-alerts.json": ALERTS}


def expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard."""
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name, board in DASHBOARDS.items():
        (HERE / "dashboards" / name).write_text(render(board))
        print(f"wrote grafana/dashboards/{name}")
