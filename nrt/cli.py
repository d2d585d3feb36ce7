"""The `nrt` command.

Subcommands live next to the code they drive (``nrt/cache/commands.py``,
``nrt/alerts/commands.py``, ...) and are imported only when invoked, so
``nrt --help`` stays fast and the engine never imports the science packages
at module level. To add a command, add one line to ``COMMANDS``.
"""

from __future__ import annotations

import importlib

import click

#: command name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "demo": "nrt.demo:demo",
    "detect": "detectors.commands:detect",
    "cache": "nrt.cache.commands:cache",
    "config": "nrt.config:config_command",
    "run": "nrt.daemon.commands:run",
    "replay": "nrt.daemon.commands:replay",
    "alerts": "nrt.alerts.commands:alerts",
    "simulate": "nrt.telemetry.commands:simulate",
    "reprocess": "nrt.reprocess:reprocess",
    "quicklook": "detectors.quicklook.commands:quicklook",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nrt")
def main() -> None:
    """nrt: near-real-time monitoring of a gamma-ray space observatory."""


if __name__ == "__main__":  # pragma: no cover
    main()
