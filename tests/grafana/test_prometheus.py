"""A real Prometheus scrapes an nrt that processed simulated pointings; every dashboard
expression must parse and return series through the HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from nrt.telemetry.simulator import simulate
from tests.grafana.support import GRAFANA, all_expressions, mentions
from tests.support.services import free_port, require_binary, wait_for_port

ROOT = Path(__file__).resolve().parents[2]

#: Declared in nrt/metrics.py, shown on the dashboards, but not set yet by the code that owns
#: them (the daemon: ingest latency, trigger evaluations). Their panels must still parse;
#: the test fails as soon as one of them returns series, so this list cannot go stale.
NOT_SET_YET: set[str] = set()


def api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as exc:  # 400 for a bad expression: the body says why
        return json.load(exc)


def scraped_value(port: int, expr: str) -> float | None:
    found = api(port, "query", query=expr)["data"]["result"]
    return float(found[0]["value"][1]) if found else None


@pytest.fixture
def processed(tmp_path, mosquitto):
    """Simulated telemetry (one bright GRB in the imager's field) replayed by the daemon."""
    telemetry = tmp_path / "telemetry"
    truth = simulate(
        telemetry,
        hours=1.2,
        seed=5,
        chunk_seconds=60.0,
        anomalies="hot_pixel@900",
        inject=[{"at": 600.0, "fluence": 3e-5, "y": 1.0, "z": -0.5, "short": False}],
    )
    config = tmp_path / "nrt.toml"
    config.write_text(
        f'[paths]\nstate = "{tmp_path / "state"}"\ncache = "{tmp_path / "cache"}"\n'
        f'[metrics]\nlisten = ""\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\ntelemetry = false\n'
        f'[inbox]\nenabled = false\n[alerts]\ntense = "test"\n'
    )
    port, ready = free_port(), tmp_path / "ready"
    feeder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.grafana.feeder",
            str(telemetry),
            str(config),
            str(port),
            str(ready),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        yield port, ready, truth, feeder
    finally:
        feeder.terminate()
        out = feeder.communicate(timeout=30)[0].decode(errors="replace")
        if feeder.returncode not in (0, -15):
            print(out[-5000:])


@pytest.fixture
def prometheus(tmp_path, processed):
    binary = require_binary("prometheus")
    nrt_port = processed[0]
    config = yaml.safe_load((GRAFANA / "prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(GRAFANA / "prometheus/rules.yml")]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{nrt_port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        yield port
    finally:
        proc.terminate()
        log = proc.communicate(timeout=30)[0].decode(errors="replace")
        if proc.returncode not in (0, -15):
            print(log[-5000:])


def test_every_dashboard_expression_returns_series(processed, prometheus):
    nrt_port, ready, truth, feeder = processed
    deadline = time.monotonic() + 150
    while not ready.exists():
        assert feeder.poll() is None, "the daemon replay died (see the captured output)"
        assert time.monotonic() < deadline, "the daemon did not finish the replay in time"
        time.sleep(0.5)
    assert ready.read_text().strip() == "0"
    with urllib.request.urlopen(f"http://127.0.0.1:{nrt_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    runs = sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("nrt_quicklook_runs_total{")
    )
    assert runs >= len(truth["pointings"])
    # wait until Prometheus has scraped the finished state, plus a few samples for rate()
    while scraped_value(prometheus, "sum(nrt_quicklook_runs_total)") != runs:
        assert time.monotonic() < deadline, "Prometheus never scraped the final state"
        time.sleep(0.5)
    time.sleep(3)

    failures, now_set = [], []
    for uid, title, expr in all_expressions():
        answer = api(prometheus, "query", query=expr)
        pending = any(mentions(expr, name) for name in NOT_SET_YET)
        if answer.get("status") != "success":
            failures.append(f"{uid} / {title}: {expr}: {answer.get('error')}")
        elif not answer["data"]["result"] and not pending:
            failures.append(f"{uid} / {title}: {expr}: no series")
        elif answer["data"]["result"] and pending:
            now_set.append(expr)
    assert not failures, "\n".join(failures)
    assert not now_set, f"these now return series: remove them from NOT_SET_YET: {now_set}"

    # the data behind the health panels is the quick-look's: the injected hot pixel alarms
    assert scraped_value(prometheus, 'nrt_check_status{check="pixels", module="all"}') == 2
    assert (
        scraped_value(prometheus, 'ALERTS{alertname="NrtCheckAlarm", check="pixels"}') is not None
    )
