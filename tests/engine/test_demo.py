"""`nrt demo` (engine stage) shows cache reuse and a version bump's exact recomputation."""

from click.testing import CliRunner

from nrt.cli import main


def test_demo_runs_and_reports_reuse_and_the_reason_for_recomputation():
    result = CliRunner().invoke(main, ["demo", "--pointings", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        line.startswith("warm run (restored by signature)") and "ran: nothing" in line
        for line in lines
    )
    bump = next(line for line in lines if line.startswith("calibration v2"))
    assert "Calibrated x2" in bump and "Spectrum x2" in bump and "Events" not in bump
    assert "Spectrum.input_events: version: v1 -> v2" in result.output
