"""``nrt detect``: text and JSON lines, bad files reported without stopping the others."""

from __future__ import annotations

import json

from click.testing import CliRunner

from nrt.cli import main


def test_json_lines_on_real_files(realdata):
    files = [
        str(realdata / "bat_grb130603B_64ms.lc"),
        str(realdata / "spiacs_grb230307a_0.1s.fits"),
    ]
    res = CliRunner().invoke(main, ["detect", *files, "--json", "--far", "1"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["instrument"] for r in rows} == {"BAT", "SPI-ACS"}
    acs = [r for r in rows if r["instrument"] == "SPI-ACS"]
    assert acs[0]["time_utc"].startswith("2023-03-07T15:44:0")
    assert set(rows[0]) >= {"time_met", "timescale", "significance", "far_per_day", "flags"}


def test_text_output_and_a_bad_file(realdata, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("".join(f"{i * 0.1:.1f} {400 + i % 3}\n" for i in range(100)))
    res = CliRunner().invoke(main, ["detect", str(short), str(realdata / "bat_grb231117A_64ms.lc")])
    assert res.exit_code == 1
    assert "short.txt: TIME: covers 10 s" in res.stderr
    assert "bat_grb231117A_64ms.lc: BAT 2023-11-17T03:03:" in res.stdout
    assert "S=" in res.stdout and "far=" in res.stdout
