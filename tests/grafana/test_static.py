"""Dashboards, provisioning, scrape config and alerting rules, checked without a server."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from nrt import metrics
from tests.grafana.support import GRAFANA, all_expressions, dashboards, exported_families, mentions
from tests.support.services import require_binary


def test_dashboard_json_is_what_dashboards_py_writes():
    module = dashboards()
    for name, board in module.DASHBOARDS.items():
        assert (GRAFANA / "dashboards" / name).read_text() == module.render(board), (
            f"grafana/dashboards/{name} is stale: run `python grafana/dashboards.py`"
        )


def test_dashboards_have_fixed_uids_and_the_fixed_datasource():
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/nrt.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    uids = set()
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"] == path.stem and len(board["uid"]) <= 40
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for p in board["panels"]:
            assert p["datasource"]["uid"] == uid
            assert p["targets"] and all(t["datasource"]["uid"] == uid for t in p["targets"])
    assert uids == {"nrt-pipeline", "nrt-health", "nrt-alerts"}
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/nrt.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


def test_every_panel_expression_parses(tmp_path):
    """promtool parses each expression as a recording rule (the live test also runs them)."""
    promtool = require_binary("promtool")
    rules = [
        {"record": f"nrt:panel_{i}", "expr": expr}
        for i, (_, _, expr) in enumerate(all_expressions())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_exported_metric_is_shown_or_deliberately_unshown():
    families = exported_families(metrics.exposition().decode())
    exprs = [expr for _, _, expr in all_expressions()]
    unshown = dashboards().UNSHOWN
    missing = [f for f in families if f not in unshown and not any(mentions(e, f) for e in exprs)]
    assert not missing, f"exported but on no dashboard and not in UNSHOWN: {missing}"
    stale = [f for f in unshown if f not in families]
    assert not stale, f"UNSHOWN lists metrics nrt does not export: {stale}"
    # and the dashboards name no nrt metric that does not exist
    names = {m for e in exprs for m in __import__("re").findall(r"\bnrt_[a-z_]+", e)}
    known = {f + s for f in families for s in ("", "_total", "_bucket", "_sum", "_count")}
    assert names <= known, names - known


def test_alerting_rules_pass_promtool_unit_tests():
    promtool = require_binary("promtool")
    for args in (
        ["check", "rules", str(GRAFANA / "prometheus/rules.yml")],
        ["test", "rules", str(GRAFANA / "prometheus/rules_test.yml")],
        ["check", "config", str(GRAFANA / "prometheus/prometheus.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "alert",
    ["NrtDown", "NrtTelemetryLagHigh", "NrtOutboxGrowing", "NrtCalibrationDrift", "NrtCheckAlarm"],
)
def test_each_alert_rule_is_unit_tested(alert):
    rules = yaml.safe_load((GRAFANA / "prometheus/rules.yml").read_text())
    assert alert in [r["alert"] for g in rules["groups"] for r in g["rules"]]
    tests = yaml.safe_load((GRAFANA / "prometheus/rules_test.yml").read_text())
    tested = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", [])}
    assert alert in tested
