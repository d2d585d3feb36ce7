"""``nrt demo``: the whole daemon on simulated telemetry, with nothing to set up.

It simulates a stretch of telemetry with bursts and one instrument anomaly,
replays it through the real daemon (local cache, SQLite state, a metrics
endpoint, alerts to the console, and to MQTT if a broker answers), shows live
progress, and ends with the alerts found against the injected truth, latencies,
cache reuse, and the anomaly caught by the health checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from nrt import affinity
from nrt import config as configuration

#: A seed whose first hours hold bright short and long bursts, one in the imager's field.
DEMO_SEED = 12
DEMO_GRB_RATE = 120.0
DEMO_ANOMALY = "gain_jump"


def broker_answers(url: str, timeout: float = 0.3) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883), timeout):
            return True
    except OSError:
        return False


def free_port(preferred: int = 9108) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    return 0


class Progress:
    """One status line rewritten in place on a terminal; a line every 10% otherwise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.alerts = 0
        self._last_decile = -1

    def update(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        if self.tty:
            bar = "#" * int(30 * fraction)
            self.stream.write(
                f"\r  [{bar:<30}] {done}/{total} chunks  {self.alerts} alerts  "
                f"{time.monotonic() - self.started:5.1f} s"
            )
            self.stream.flush()
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            self.stream.write(f"  {done}/{total} chunks, {self.alerts} alerts\n")

    def alert(self, record: Any) -> None:
        self.alerts += 1
        a, t = record.alert, record.trigger
        line = (
            f"  ALERT {a.id}: {t.significance:.1f} sigma on {t.timescale:.2f} s at {a.trigger_time}"
        )
        self.stream.write(("\r" + " " * 100 + "\r" if self.tty else "") + line + "\n")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _utc(tt_seconds: float):
    from nrt.telemetry.formats import tt_time

    return tt_time(tt_seconds).utc


def burst_table(truth: dict[str, Any], summary: Any, updates: list[Any]) -> list[str]:
    """Injected bursts against alerts (matched within 5 s of onset)."""
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    rows = [
        f"  {'injected burst (UTC)':<24} {'class':<6} {'ACS counts':>10} {'FOV':<4} {'alert':<32} {'position':<22}"
    ]
    alerts = [(Time(r.alert.trigger_time), r) for r in summary.alerts]
    matched = set()
    for burst in truth.get("grbs", []):
        onset = _utc(burst["onset"])
        near = [(abs((t - onset).sec), r) for t, r in alerts if abs((t - onset).sec) < 5]
        found = min(near, key=lambda x: x[0])[1] if near else None
        position = ""
        if found is not None:
            matched.add(found.alert.id)
            loc = next((u.localization for u in updates if u.id == found.alert.id), None)
            if loc is not None:
                off = (
                    SkyCoord(loc.ra, loc.dec, unit="deg")
                    .separation(SkyCoord(burst["ra"], burst["dec"], unit="deg"))
                    .arcmin
                )
                position = f"{off:.1f}' off (err {loc.ra_dec_error * 60:.1f}')"
        fov = "yes" if burst.get("in_fov") else "no"
        alert = (
            f"{found.trigger.significance:.1f} sigma, {found.trigger.timescale:.2f} s"
            if found
            else "-"
        )
        rows.append(
            f"  {onset.isot[:23]:<24} {burst['class']:<6} {burst['acs_counts_expected']:>10.0f} "
            f"{fov:<4} {alert:<32} {position:<22}"
        )
    extra = [r for _, r in alerts if r.alert.id not in matched]
    if extra:
        rows.append(
            f"  alerts matching no injected burst: {len(extra)} (false alarms or cosmic-ray pile-up)"
        )
    return rows


@click.command()
@click.option("--hours", default=3.0, show_default=True, help="Hours of telemetry to simulate.")
@click.option("--seed", default=DEMO_SEED, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="A daemon configuration (its broker URL is used).",
)
@click.option("--keep", is_flag=True, help="Keep the working directory and say where it is.")
def demo(hours: float, seed: int, config_path: str | None, keep: bool) -> None:
    """Simulate telemetry with bursts and an anomaly, run the daemon on it, compare with the truth."""
    from nrt.daemon import Daemon
    from nrt.telemetry.simulator import simulate

    base = configuration.load(config_path) if config_path else configuration.Config()
    work = Path(tempfile.mkdtemp(prefix="nrt-demo-"))
    out = sys.stderr
    click.echo(
        f"nrt demo: {hours:g} h of simulated INTEGRAL-like telemetry (seed {seed}) in {work}",
        err=True,
    )
    t0 = time.monotonic()
    truth = simulate(
        work / "telemetry", hours, seed, grb_rate_per_day=DEMO_GRB_RATE, anomalies=[DEMO_ANOMALY]
    )
    click.echo(
        f"  simulated in {time.monotonic() - t0:.1f} s: {len(truth['grbs'])} bursts, "
        f"{len(truth.get('anomalies', []))} anomaly, {sum(truth['files'].values())} files",
        err=True,
    )
    mqtt = broker_answers(base.mqtt.url)
    port = free_port()
    config = dataclasses.replace(
        base,
        paths=dataclasses.replace(base.paths, state=str(work / "state"), cache=str(work / "cache")),
        alerts=dataclasses.replace(base.alerts, tense="test", directory=str(work / "alerts")),
        mqtt=dataclasses.replace(base.mqtt, enabled=mqtt, telemetry=False, client_id="nrt-demo"),
        inbox=dataclasses.replace(base.inbox, enabled=False),
        metrics=dataclasses.replace(base.metrics, listen=f"127.0.0.1:{port}"),
        logging=dataclasses.replace(base.logging, level="ERROR"),
    )
    click.echo(
        f"  daemon: metrics on http://127.0.0.1:{port}/metrics, alerts to the console, "
        f"{work / 'alerts'}"
        + (
            f" and MQTT {base.mqtt.url} (topic nrt/alerts/#)"
            if mqtt
            else f" (no MQTT broker answers at {base.mqtt.url})"
        ),
        err=True,
    )
    import logging

    logging.basicConfig(level=logging.ERROR, stream=out)
    progress = Progress(out)
    affinity.apply(config.daemon.cpus)
    daemon = Daemon(
        config, replay=work / "telemetry", on_alert=progress.alert, on_progress=progress.update
    )
    asyncio.run(daemon.run())
    progress.close()
    _report(daemon, truth, work)
    if keep:
        click.echo(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _report(daemon: Any, truth: dict[str, Any], work: Path) -> None:
    from nrt.daemon.report import cache_line, latency_line

    s = daemon.summary
    echo = click.echo
    echo("")
    echo(
        f"replayed {s.chunks} chunks = {s.data_seconds / 3600:.1f} h of data in {s.seconds:.1f} s "
        f"({s.data_seconds / max(s.seconds, 1e-9):.0f}x real time)"
    )
    echo("")
    echo("bursts: injected vs found")
    for row in burst_table(truth, s, daemon.localization.updates):
        echo(row)
    if line := latency_line(s):
        echo("")
        echo(line)
    echo("")
    echo("pointings (quick-look and health checks)")
    anomalies = truth.get("anomalies", [])
    for p in s.pointings:
        alarms = [
            f"{r['check']} {'ALARM' if max(r.get('modules', {0: 0}).values()) == 2 else 'warning'}"
            for r in p.reports
            if max(r.get("modules", {0: 0}).values(), default=0) > 0
        ]
        echo(
            f"  {p.pointing}  {p.outcome:<16} {p.seconds:6.2f} s  {', '.join(alarms) or 'all checks ok'}"
        )
    if not s.pointings:
        echo("  (no quick-look graph is registered: install the detectors and checks packages)")
    for anomaly in anomalies:
        at = anomaly.get("time")
        where = next(
            (
                p["id"]
                for p in truth.get("pointings", [])
                if at is not None and p["tstart"] <= at < p["tstop"]
            ),
            "?",
        )
        first = next((p for p in s.pointings if p.pointing == where), None)
        caught = [
            r["check"]
            for r in (first.reports if first else [])
            if max(r.get("modules", {0: 0}).values(), default=0) > 0
        ]
        echo(
            f"  injected anomaly: {anomaly.get('kind')} at {_utc(at).isot[:19] if at else '?'} in pointing {where}: "
            + (f"caught by {', '.join(caught)}" if caught else "NOT caught")
        )
    stats = daemon.pointings.cache.stats() if s.pointings else None
    if stats:
        echo(f"cache: {stats['products']} products, {stats['bytes'] / 2**20:.1f} MiB")
    if line := cache_line(s):
        echo(line)
