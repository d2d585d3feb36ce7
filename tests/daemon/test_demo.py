"""`nrt demo`: the real daemon on simulated telemetry, reported against the truth."""

import re
import time

from click.testing import CliRunner

from nrt.cli import main
from tests.daemon.harness import Collector


def test_demo_finds_the_bright_bursts_and_the_anomaly_and_publishes_to_the_broker(
    tmp_path, mosquitto, caplog
):
    """The demo's own broker URL is the test's mosquitto (never the host's 1883)."""
    config = tmp_path / "nrt.toml"
    config.write_text(f'[mqtt]\nurl = "{mosquitto.url}"\n')
    collector = Collector(mosquitto.port, client_id="demo-subscriber")
    try:
        deadline = time.monotonic() + 10
        while not collector.subscriptions and time.monotonic() < deadline:
            time.sleep(0.05)
        result = CliRunner().invoke(main, ["demo", "--hours", "0.5", "--config", str(config)])
        assert result.exit_code == 0, result.output
        out = result.output
        assert f"and MQTT {mosquitto.url}" in out
        assert "bursts: injected vs found" in out
        # The 60881-count short burst of seed 12 is found far above threshold.
        row = next(line for line in out.splitlines() if " 60881 " in line)
        assert re.search(r"\d+\.\d sigma", row), row
        assert re.search(r"injected anomaly: gain_jump .* caught by calibration_lines", out), out
        assert re.search(r"replayed \d+ chunks", out)
        issued = set(re.findall(r"ALERT (\S+) SPI-ACS at", caplog.text))
        assert issued, "the demo's bursts raise alerts"
        deadline = time.monotonic() + 10
        while {k[0] for k in collector.alerts()} != issued and time.monotonic() < deadline:
            time.sleep(0.1)
        alerts = collector.alerts()
        assert {k[0] for k in alerts} == issued
        assert all(a["alert_tense"] == "test" for a in alerts.values()), "a demo's alerts are tests"
    finally:
        collector.close()
