"""The daemon's TOML configuration: one file, every key optional, checked with clear errors.

The schema is the set of dataclasses below; each field's metadata says what it
means (``doc``), what is allowed (``choices``, ``min``, ``max``), whether SIGHUP
can change it (``reload``) and whether it is a secret (never logged). Sizes
('10G') and durations ('30d', '250ms') are accepted where a field is one.
``nrt config check FILE`` lists every problem: the file, the key, its value and
what is allowed. ``nrt.example.toml`` documents every key with its default.
"""

# ruff: noqa: RUF009  (`_f` returns a dataclasses.field carrying the key's documentation)
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrt import affinity, units


def _f(default: Any, doc: str, **meta: Any) -> Any:
    factory = isinstance(default, list | dict)
    kw = {"default_factory": (lambda d=default: type(d)(d))} if factory else {"default": default}
    return field(metadata={"doc": doc, **meta}, **kw)


@dataclass(frozen=True)
class PathsConfig:
    inbox: str = _f("", "telemetry inbox directory; default: <state dir>/inbox")
    quarantine: str = _f(
        "", "where unparseable files go, with a .reason file; default: <state dir>/quarantine"
    )
    cache: str = _f(
        "", "cache root; $NRT_CACHE_DIR wins; default: CacheDirectory or $XDG_CACHE_HOME/nrt"
    )
    state: str = _f(
        "", "state directory; $NRT_STATE_DIR wins; default: StateDirectory or $XDG_STATE_HOME/nrt"
    )


@dataclass(frozen=True)
class InboxConfig:
    enabled: bool = _f(True, "watch the inbox directory")
    rescan: float = _f(
        60.0, "full rescan period, s (events are lost on some file systems)", min=1, unit="s"
    )
    queue: int = _f(
        256, "chunks waiting for the detectors before the source waits (backpressure)", min=1
    )


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = _f(True, "publish alerts and health to a broker (and take telemetry from it)")
    url: str = _f("mqtt://127.0.0.1:1883", "broker: mqtt://host:port or mqtts://host:port (TLS)")
    prefix: str = _f("nrt", "topic prefix")
    client_id: str = _f("nrt", "fixed client id: the broker keeps our session across restarts")
    username: str = _f("", "user name, if the broker wants one")
    password_file: str = _f("", "file whose content is the password", secret=True)
    password_credential: str = _f(
        "mqtt-password", "credential name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)"
    )
    ca_file: str = _f("", "CA certificate for TLS")
    cert_file: str = _f("", "client certificate for TLS")
    key_file: str = _f("", "client key for TLS", secret=True)
    message_expiry: float = _f(7 * 86400.0, "MQTT 5 expiry of alert messages, s", min=1, unit="s")
    telemetry: bool = _f(True, "also take telemetry from <prefix>/telemetry/<kind>")


@dataclass(frozen=True)
class AlertsConfig:
    tense: str = _f(
        "current",
        "alert_tense: current for live data, test for simulated data",
        choices=("current", "test"),
        reload=True,
    )
    directory: str = _f("", "also write each alert as JSON and VOEvent files here")
    hook: list = _f([], "command run for each alert (argv list); the alert JSON on stdin")
    author_ivorn: str = _f("ivo://nrt/nrt", "IVORN of the VOEvent author")
    flush_timeout: float = _f(
        20.0, "on stop, wait at most this long for pending alerts, s", min=0, unit="s"
    )
    retain: float = _f(
        30 * 86400.0,
        "alerts every sink delivered are deleted from the outbox this long after their last "
        "revision, at each cache gc interval; their ids are kept, so they are never issued "
        "again; at least 2d (the ingest log's window), s",
        min=2 * 86400.0,
        unit="s",
        reload=True,
    )


@dataclass(frozen=True)
class TriggerConfig:
    enabled: bool = _f(True, "run the rate triggers on the stream")
    far_per_day: float = _f(
        1.0, "false-alarm rate per day over all timescales together", min=1e-6, max=1e4, reload=True
    )
    prompt: bool = _f(
        True,
        "alert on an excess's first window at once (preliminary), then update or retract it",
        reload=True,
    )
    instruments: list = _f(["acs"], "which kinds feed the rate trigger", choices=("acs", "isgri"))


@dataclass(frozen=True)
class QuicklookConfig:
    enabled: bool = _f(True, "run the quick-look and health graph per pointing")
    grace: float = _f(
        900.0,
        "start a pointing's quick-look this long after its last chunk even if incomplete, s",
        min=0,
        unit="s",
    )
    concurrency: int = _f(
        2, "pointings processed at once (numpy/scipy run off the event loop)", min=1, max=64
    )
    products: str = _f(
        "",
        "FITS products go to <products>/<pointing>/; default: <state dir>/products; 'off': none",
    )


@dataclass(frozen=True)
class CacheConfig:
    memory_bytes: int = _f(64 << 20, "memory tier budget, bytes (e.g. 64M)", min=0, unit="bytes")
    max_bytes: int = _f(
        50 << 30,
        "gc keeps the local cache under this, bytes (e.g. 50G)",
        min=0,
        unit="bytes",
        reload=True,
    )
    max_age: float = _f(
        90 * 86400.0,
        "gc evicts results unused for this long, s (e.g. 90d)",
        min=0,
        unit="s",
        reload=True,
    )
    gc_interval: float = _f(3600.0, "how often gc runs, s", min=1, unit="s", reload=True)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = _f("127.0.0.1:9108", "host:port of the Prometheus endpoint; empty disables it")


@dataclass(frozen=True)
class DaemonConfig:
    cpus: str = _f(
        "one",
        "CPUs the daemon's threads run on: 'one' (of those it may use; measured faster), "
        "'all', or a list like '0,2-3'",
        unit="cpus",
    )


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _f("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), reload=True)


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    quicklook: QuicklookConfig = field(default_factory=QuicklookConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    #: Limits of the health checks, by check name: free-form tables the checks validate.
    checks: dict = field(
        default_factory=dict, metadata={"doc": "health-check limits", "reload": True}
    )
    source: str = field(default="(defaults)", compare=False, metadata={"internal": True})

    def redacted(self) -> dict[str, Any]:
        """The configuration as a dict with secrets masked, for logs and ``config check``."""
        out: dict[str, Any] = {}
        for section in dataclasses.fields(self):
            if section.metadata.get("internal"):
                continue
            value = getattr(self, section.name)
            if dataclasses.is_dataclass(value):
                out[section.name] = {
                    f.name: (
                        "***"
                        if f.metadata.get("secret") and getattr(value, f.name)
                        else getattr(value, f.name)
                    )
                    for f in dataclasses.fields(value)
                }
            else:
                out[section.name] = value
        return out

    def mqtt_password(self) -> str | None:
        """The broker password from password_file or the systemd credential; never logged."""
        if self.mqtt.password_file:
            return Path(self.mqtt.password_file).read_text().strip()
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds and self.mqtt.password_credential:
            path = Path(creds) / self.mqtt.password_credential
            if path.is_file():
                return path.read_text().strip()
        return None


RELOADABLE = "reload"


class ConfigError(ValueError):
    """Every problem found in a configuration file, one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _allowed(f: dataclasses.Field, kind: Any) -> str:
    meta = f.metadata
    if "choices" in meta:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    bits = []
    unit = meta.get("unit")
    if unit == "bytes":
        bits.append("a size like 512M or 10G, or a number of bytes")
    elif unit == "s":
        bits.append("a duration like 250ms, 90m, 12h, 30d, or a number of seconds")
    elif unit == "cpus":
        bits.append(affinity.ALLOWED)
    else:
        bits.append(
            {
                bool: "true or false",
                int: "an integer",
                float: "a number",
                str: "a string",
                list: "a list",
                dict: "a table",
            }.get(kind, str(kind))
        )
    if "min" in meta:
        bits.append(f">= {meta['min']}")
    if "max" in meta:
        bits.append(f"<= {meta['max']}")
    return " ".join(bits)


def _convert(f: dataclasses.Field, kind: Any, value: Any) -> Any:
    """The value as the field's type, or raise ValueError."""
    unit = f.metadata.get("unit")
    try:
        if unit == "bytes" and isinstance(value, str | int) and not isinstance(value, bool):
            value = units.parse_bytes(value)
        elif unit == "s" and isinstance(value, str | int | float) and not isinstance(value, bool):
            value = units.parse_seconds(value)
        elif unit == "cpus" and isinstance(value, str):
            affinity.parse(value)
    except OverflowError:  # '999...9G': more digits than a float holds
        raise ValueError("out of range") from None
    if isinstance(value, float) and not math.isfinite(value):  # nan passes every min/max test
        raise ValueError("not a finite number")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is bool and not isinstance(value, bool):
        raise ValueError("wrong type")
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("wrong type")
    if kind in (str, list, dict) and not isinstance(value, kind):
        raise ValueError("wrong type")
    meta = f.metadata
    choices = meta.get("choices")
    if choices:
        items = value if isinstance(value, list) else [value]
        if any(v not in choices for v in items):
            raise ValueError("not allowed")
    if ("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"]):
        raise ValueError("out of range")
    return value


def _section(cls: type, table: Any, name: str, problems: list[str]) -> Any:
    if not isinstance(table, dict):
        problems.append(f"[{name}] must be a table, got {table!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None:
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(fields)}"
            problems.append(f"[{name}] {key}: unknown key{hint}")
            continue
        kind = hints[key]
        kind = typing.get_origin(kind) or kind
        if isinstance(kind, types.UnionType):
            kind = str
        try:
            values[key] = _convert(f, kind, value)
        except ValueError:
            shown = "***" if f.metadata.get("secret") else repr(value)
            problems.append(
                f"[{name}] {key} = {shown}: allowed: {_allowed(f, kind)} ({f.metadata['doc']})"
            )
    return cls(**values)


def _check_limits(table: dict[str, Any]) -> list[str]:
    """Problems the installed health checks find in their ``[checks.<name>]`` limits."""
    from nrt.plugins import MissingHook, hook

    try:
        validate = hook("check_limits")
    except MissingHook:
        return []  # no checks installed: nothing to say about their limits
    try:
        validate(table)
    except ValueError as exc:
        return [str(exc)]
    return []


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build a Config from parsed TOML, or raise ConfigError listing every problem."""
    problems: list[str] = []
    sections = {f.name: f for f in dataclasses.fields(Config) if not f.metadata.get("internal")}
    built: dict[str, Any] = {}
    for name, table in data.items():
        f = sections.get(name)
        if f is None:
            near = difflib.get_close_matches(name, sections, n=1)
            hint = (
                f"; did you mean [{near[0]}]?"
                if near
                else f"; known sections: {', '.join(sections)}"
            )
            problems.append(f"[{name}]: unknown section{hint}")
            continue
        if name == "checks":
            if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
                problems.append(
                    "[checks] must hold one table per check, e.g. [checks.calibration_lines]"
                )
            else:
                problems += _check_limits(table)
                built[name] = table
            continue
        built[name] = _section(f.default_factory, table, name, problems)
    if problems:
        raise ConfigError(source, problems)
    return Config(**built, source=source)


def load(path: str | os.PathLike | None) -> Config:
    """Read and check a TOML file (None: all defaults)."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read it: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse(data, str(path))


def reload_changes(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """(keys SIGHUP applies, keys that need a restart) between two configurations."""
    applied, restart = [], []
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        a, b = getattr(old, section.name), getattr(new, section.name)
        if a == b:
            continue
        if not dataclasses.is_dataclass(a):
            (applied if section.metadata.get("reload") else restart).append(section.name)
            continue
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                (applied if f.metadata.get("reload") else restart).append(
                    f"{section.name}.{f.name}"
                )
    return applied, restart


def schema() -> dict[str, dict[str, dataclasses.Field]]:
    """Section -> key -> field, for documentation and tests."""
    out = {}
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal") or section.name == "checks":
            continue
        out[section.name] = {f.name: f for f in dataclasses.fields(section.default_factory)}
    return out


# ---------------------------------------------------------------- `nrt config`


def _command():
    import json

    import click

    @click.group("config")
    def config_group() -> None:
        """Check and show the daemon's configuration."""

    @config_group.command("check")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option(
        "--json", "as_json", is_flag=True, help="Print the effective configuration as JSON."
    )
    def check(file: str, as_json: bool) -> None:
        """Check FILE; list every bad key with its value and what is allowed (exit 1)."""
        try:
            config = load(file)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"{exc.source}: {problem}", err=True)
            raise SystemExit(1) from None
        if as_json:
            click.echo(json.dumps(config.redacted(), sort_keys=True))
        else:
            click.echo(f"{file}: OK")

    return config_group


config_command = _command()
