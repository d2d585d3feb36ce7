"""``nrt run`` and ``nrt replay``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
from pathlib import Path

import click

from nrt import affinity
from nrt import config as configuration


def _load(path: str | None) -> configuration.Config:
    try:
        return configuration.load(path)
    except configuration.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML configuration."
)
def run(config_path: str | None) -> None:
    """Run the daemon until SIGTERM (under systemd: Type=notify)."""
    from nrt.alerts.model import AlertFormatError
    from nrt.daemon import Daemon

    config = _load(config_path)
    _logging(config.logging.level)
    affinity.apply(config.daemon.cpus)
    try:
        sys.exit(asyncio.run(Daemon(config).run()))
    except AlertFormatError as exc:  # e.g. a damaged outbox it will not start over
        raise click.ClickException(str(exc)) from None


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML configuration."
)
@click.option(
    "--speed", type=float, help="Pace at this many times real time (default: as fast as possible)."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="State (ingest log, outbox); default: a temporary directory.",
)
@click.option(
    "--tense",
    type=click.Choice(["test", "current"]),
    default="test",
    show_default=True,
    help="alert_tense of replayed alerts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def replay(
    directory: str,
    config_path: str | None,
    speed: float | None,
    state_dir: str | None,
    tense: str,
    as_json: bool,
) -> None:
    """Push a directory of telemetry through the daemon's code path, then summarize."""
    from nrt.daemon import Daemon
    from nrt.daemon.report import summary_dict, summary_text

    config = _load(config_path)
    _logging(config.logging.level if not as_json else "WARNING")
    state = state_dir or tempfile.mkdtemp(prefix="nrt-replay-")
    config = dataclasses.replace(
        config,
        paths=dataclasses.replace(config.paths, state=state),
        alerts=dataclasses.replace(config.alerts, tense=tense),
        inbox=dataclasses.replace(config.inbox, enabled=False),
        # its own client id: a live daemon with the same configuration holds "<id>-alerts",
        # and the broker would drop one of the two connections for the other, again and again
        mqtt=dataclasses.replace(
            config.mqtt, telemetry=False, client_id=f"{config.mqtt.client_id}-replay"
        ),
    )
    affinity.apply(config.daemon.cpus)
    daemon = Daemon(config, replay=Path(directory), speed=speed)
    status = asyncio.run(daemon.run())
    if as_json:
        click.echo(json.dumps(summary_dict(daemon.summary), sort_keys=True))
    else:
        click.echo(summary_text(daemon.summary))
    sys.exit(status)
