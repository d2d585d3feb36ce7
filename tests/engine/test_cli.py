"""Every command of DESIGN.md section 11 exists and has --help; nrt never imports the science eagerly."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from nrt.cli import COMMANDS, main

CONTRACT = ["demo", "run", "replay", "simulate", "detect", "alerts", "cache", "reprocess", "config"]


def test_contract_commands_are_registered():
    assert set(CONTRACT) <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_subcommand_has_help(name):
    runner = CliRunner()
    result = runner.invoke(main, [name, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, result.output
    command = main.get_command(click.Context(main), name)
    for sub in getattr(command, "commands", {}):
        result = runner.invoke(main, [name, sub, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (name, sub, result.output)


def test_nrt_does_not_import_the_science_packages_at_module_level():
    code = (
        "import sys, nrt, nrt.cli, nrt.daemon, nrt.execute, nrt.cache, nrt.alerts.publisher; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('detectors', 'checks')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
