"""Metrics: check reports into gauges, the HTTP exposition, promtool's verdict."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest

from detectors.quicklook import build, run_quicklook
from nrt import metrics
from nrt.cache import Cache
from tests.support.services import require_binary


def test_publish_check_sets_the_health_gauges(clean_roots, tmp_path):
    graph = run_quicklook(
        build(clean_roots), Cache.open(tmp_path / "c", tmp_path / "s"), publish=True
    )
    value = metrics.REGISTRY.get_sample_value
    fit = graph.LineFit.fits["511"]
    assert value(
        "nrt_calibration_line_position_electronvolts", {"instrument": "ISGRI", "line": "511"}
    ) == pytest.approx(fit["position"] * 1e3)
    assert (
        value("nrt_check_status", {"instrument": "ISGRI", "module": "all", "check": "pixels"}) == 0
    )
    assert (
        value("nrt_check_status", {"instrument": "ISGRI", "module": "3", "check": "module_rates"})
        == 0
    )
    rate = value("nrt_count_rate_per_second", {"instrument": "SPI-ACS", "module": "shield"})
    assert rate == pytest.approx(9.0e4, rel=0.01)
    assert value("nrt_dead_time_ratio", {"instrument": "ISGRI"}) == pytest.approx(0.05, abs=0.01)
    assert value(
        "nrt_housekeeping_value", {"instrument": "ISGRI", "parameter": "HV_BIAS"}
    ) == pytest.approx(100, abs=1)
    assert value("nrt_quicklook_runs_total", {"outcome": "ok"}) >= 1


def test_publish_check_refuses_undeclared_gauges_and_labels():
    base = {"instrument": "ISGRI", "check": "x", "modules": {"all": 0}}
    with pytest.raises(ValueError, match="unknown gauge"):
        metrics.publish_check(
            base | {"gauges": [{"metric": "pointing_id", "labels": {}, "value": 1}]}
        )
    bad_labels = {"metric": "dead_time_ratio", "labels": {"pointing": "000100010010"}, "value": 1}
    with pytest.raises(ValueError, match="takes labels"):
        metrics.publish_check(base | {"gauges": [bad_labels]})
    with pytest.raises(ValueError, match="not 0, 1, 2"):
        metrics.publish_check(base | {"modules": {"all": 7}})


def test_exposition_over_http_passes_promtool(clean_roots, tmp_path):
    promtool = require_binary("promtool")
    run_quicklook(build(clean_roots), Cache.open(tmp_path / "c", tmp_path / "s"), publish=True)
    server = metrics.serve("127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read()
    finally:
        server.stop()
    assert b"nrt_check_status{" in text and b"nrt_element_runs_total{" in text
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done


def test_no_label_takes_unbounded_values():
    """Labels are from closed sets: no pointing, file, alert or signature labels anywhere."""
    forbidden = {"pointing", "file", "filename", "path", "alert", "alert_id", "id", "signature"}
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            assert not forbidden & set(sample.labels), family.name
    for collector in list(metrics.REGISTRY._collector_to_names):
        labelnames = set(getattr(collector, "_labelnames", ()))
        assert not forbidden & labelnames, collector


@pytest.mark.parametrize("listen", ["nohost", "host:port", "h:70000"])
def test_listen_address_errors_say_the_format(listen):
    with pytest.raises(ValueError, match="host:port"):
        metrics.parse_listen(listen)


def test_a_series_a_check_no_longer_reports_is_removed():
    def report(parameters):
        gauges = [
            {"metric": "housekeeping_value", "labels": {"parameter": p}, "value": 1.0}
            for p in parameters
        ]
        return {"instrument": "TEST", "check": "hk_test", "modules": {"all": 0}, "gauges": gauges}

    value = metrics.REGISTRY.get_sample_value
    metrics.publish_check(report(["A", "B"]))
    assert value("nrt_housekeeping_value", {"instrument": "TEST", "parameter": "B"}) == 1.0
    metrics.publish_check(report(["A"]))
    assert value("nrt_housekeeping_value", {"instrument": "TEST", "parameter": "A"}) == 1.0
    assert value("nrt_housekeeping_value", {"instrument": "TEST", "parameter": "B"}) is None
    with pytest.raises(ValueError):  # a bad report changes nothing
        metrics.publish_check(report(["C"]) | {"modules": {"all": 9}})
    assert value("nrt_housekeeping_value", {"instrument": "TEST", "parameter": "C"}) is None
    assert value("nrt_housekeeping_value", {"instrument": "TEST", "parameter": "A"}) == 1.0


def test_pointing_graph_hook_names_missing_telemetry(clean_roots):
    from types import SimpleNamespace

    import nrt
    from detectors.quicklook.graph import QuickLook
    from nrt.plugins import hook

    builder = hook("pointing_graph")
    ready = SimpleNamespace(pointing="000100010010", reason="covered", roots=dict(clean_roots))
    work = builder(ready, SimpleNamespace(checks={"pixels": {"hot_factor": 50.0}}))
    elements = work.elements
    assert isinstance(elements[0], QuickLook) and len(elements) == 7 + len(work.graph.products)
    assert (
        next(e for e in elements if type(e).__name__ == "PixelCheck").limits["hot_factor"] == 50.0
    )
    del ready.roots["acs"]
    with pytest.raises(nrt.AnalysisException, match="no acs telemetry"):
        builder(ready, SimpleNamespace(checks={}))
