"""`nrt demo`: the real daemon on simulated telemetry, reported against the truth."""

import re

from click.testing import CliRunner

from nrt.cli import main


def test_demo_finds_the_bright_bursts_and_the_anomaly():
    result = CliRunner().invoke(main, ["demo", "--hours", "0.5", "--config", "/dev/null"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bursts: injected vs found" in out
    # The 60881-count short burst of seed 12 is found far above threshold.
    row = next(line for line in out.splitlines() if " 60881 " in line)
    assert re.search(r"\d+\.\d sigma", row), row
    assert re.search(r"injected anomaly: gain_jump .* caught by calibration_lines", out), out
    assert re.search(r"replayed \d+ chunks", out)
