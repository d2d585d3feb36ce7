"""`nrt alerts list|follow`: read the outbox; follow the live stream."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from nrt.alerts.model import AlertFormatError
from nrt.alerts.mqtt import DEFAULT_URL, BrokerError, MqttConfig


@click.group()
def alerts() -> None:
    """Burst alerts: what the daemon committed, and the live stream."""


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--outbox",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Outbox file (default: <state dir>/alerts-outbox.sqlite).",
)
@click.option("--pending", is_flag=True, help="Only revisions some sink has not delivered.")
def list_alerts(as_json: bool, outbox: Path | None, pending: bool) -> None:
    """List every committed alert revision and its delivery state per sink.

    With --json each line is {"committed", "delivery", "alert"}, "alert" being the
    GCN notice exactly as published. Alerts delivered longer ago than the daemon's
    [alerts] retain are pruned from the outbox and not listed (a note on stderr
    says how many).
    """
    from nrt.alerts.outbox import Outbox, default_path

    path = outbox or default_path()
    if not path.exists():
        click.echo(f"no alert outbox at {path} (nothing committed yet)", err=True)
        return
    try:
        store = Outbox(path, readonly=True)
    except AlertFormatError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        for row, deliveries in store.history():
            if pending and all(state != "pending" for state, _, _ in deliveries.values()):
                continue
            committed = datetime.fromtimestamp(row.committed, UTC).isoformat(timespec="seconds")
            if as_json:
                delivery = {
                    sink: {"state": state, "attempts": attempts, "error": error}
                    for sink, (state, attempts, error) in sorted(deliveries.items())
                }
                record = {
                    "committed": committed,
                    "delivery": delivery,
                    "alert": json.loads(row.json),
                }
                click.echo(json.dumps(record, separators=(",", ":")))
                continue
            states = " ".join(
                f"{sink}:{state}" + (f"({attempts})" if state != "sent" else "")
                for sink, (state, attempts, _) in sorted(deliveries.items())
            )
            click.echo(
                f"{committed}  {row.id:<26} #{row.record_number:<3} {row.alert_type:<10} {states}"
            )
        pruned = store.count_pruned()
        if pruned and not pending:
            click.echo(
                f"({pruned} older alerts were delivered and pruned after [alerts] retain; "
                "not listed)",
                err=True,
            )
    finally:
        store.close()


@alerts.command()
@click.option(
    "--broker",
    default=lambda: os.environ.get("NRT_MQTT_URL", DEFAULT_URL),
    show_default="$NRT_MQTT_URL or " + DEFAULT_URL,
    help="mqtt://host:port or mqtts://host:port (TLS).",
)
@click.option("--prefix", default="nrt", show_default=True, help="Topic prefix.")
@click.option("--instrument", default="+", help="Only this instrument's alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print each notice as one JSON line.")
@click.option("--username", envvar="NRT_MQTT_USERNAME", help="[env NRT_MQTT_USERNAME]")
@click.option("--password", envvar="NRT_MQTT_PASSWORD", help="[env NRT_MQTT_PASSWORD]")
@click.option("--ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--session",
    help="Client id for a persistent session: alerts sent while follow is not running "
    "are delivered when it comes back.",
)
@click.option("--count", type=int, help="Exit after this many distinct alert revisions.")
def follow(
    broker: str,
    prefix: str,
    instrument: str,
    as_json: bool,
    username: str | None,
    password: str | None,
    ca_file: Path | None,
    session: str | None,
    count: int | None,
) -> None:
    """Print alerts as they arrive, each (id, record_number) once."""
    from nrt.alerts.follow import follow as follow_stream
    from nrt.alerts.text import summary

    logging.basicConfig(level=logging.WARNING, format="nrt alerts follow: %(message)s")
    try:
        config = MqttConfig(
            url=broker, prefix=prefix, username=username, password=password, ca_file=ca_file
        )
    except BrokerError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker/--ca-file") from None

    async def run() -> None:
        seen = 0
        async for alert, document in follow_stream(config, instrument=instrument, session=session):
            if as_json:
                sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
            else:
                sys.stdout.write(summary(alert) + "\n\n")
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                return

    try:
        asyncio.run(run())
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
