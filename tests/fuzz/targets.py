"""Every parser of outside data as a fuzz target: how to feed it bytes, which error it
documents, and how to tell a good rejection from a crash.

``Target.run(data)`` returns an ``Outcome``: accepted, rejected (with a normalized reason
for the summary), or a failure: a crash (any other exception, or a rejection whose
message does not name the input and the problem) or a hang (over the per-input time
limit). The per-input limit is a SIGALRM timer, so it works only in the main thread;
``MqttTarget`` uses the event loop's own timeout instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz import seeds

TIMEOUT = 5.0  # seconds per input; a parser of a few kB that takes longer is hung


class Hang(BaseException):
    """Raised in the main thread when one input takes longer than the time limit."""


@dataclass(frozen=True)
class Outcome:
    status: str  # "accepted", "rejected", "crash", "hang"
    reason: str = ""  # normalized rejection reason, or the crash's type and message

    @property
    def failed(self) -> bool:
        return self.status in ("crash", "hang")


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*\)")


def normalize(reason: str, limit: int = 70) -> str:
    """A rejection reason without its numbers and quoted values, for counting by kind."""
    text = _QUOTED.sub("'…'", reason)
    text = _NUMBER.sub("#", text)
    return text[:limit]


@dataclass
class Target:
    """A parser, its documented error type, and the inputs to try on it."""

    name: str
    call: Callable[[bytes], Any]  # raises `error` to reject
    error: type[BaseException]
    reason_of: Callable[[BaseException, str], str | None]  # normalized reason, None: unclear
    strategy: st.SearchStrategy[bytes]
    label: str = ""  # what a rejection must name (a file or topic)
    check_result: Callable[[Any], str | None] = field(default=lambda result: None)

    def run(self, data: bytes) -> Outcome:
        try:
            with time_limit(TIMEOUT):
                result = self.call(data)
        except Hang as exc:
            return Outcome("hang", str(exc))
        except self.error as exc:
            reason = self.reason_of(exc, self.label)
            if reason is None:
                return Outcome("crash", f"unclear rejection: {exc!s:.300}")
            return Outcome("rejected", reason)
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc!s:.300}")
        except RecursionError as exc:  # pragma: no cover - RecursionError is an Exception
            return Outcome("crash", f"RecursionError: {exc}")
        problem = self.check_result(result)
        if problem:
            return Outcome("crash", f"accepted but wrong: {problem}")
        return Outcome("accepted")


# ------------------------------------------------------------------ telemetry


def _telemetry_reason(exc: BaseException, label: str) -> str | None:
    from nrt.telemetry.errors import TelemetryError

    assert isinstance(exc, TelemetryError)
    if label not in str(exc) or not exc.problem or not exc.fix or not exc.field:
        return None
    return normalize(f"{exc.field}: {exc.problem}")


def chunk_target() -> Target:
    """``read_chunk`` on payload bytes under a valid name, from every kind's seed."""
    from nrt.telemetry.formats import Chunk, TelemetryError, read_chunk

    chunks = seeds.chunks()
    name = seeds.chunk_name("acs")
    names = {kind: seeds.chunk_name(kind) for kind in chunks}

    # The name says the kind: pair each mutated seed with its own kind's name.
    @st.composite
    def inputs(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(sorted(chunks)))
        data = draw(
            st.one_of(
                mut.fits_mutations([chunks[kind]]),
                mut.raw_bytes(chunks[kind][:2880]),
                mut.raw_bytes(),
            )
        )
        return names[kind].encode() + b"\0" + data

    def call(data: bytes) -> Any:
        given, _, payload = data.partition(b"\0")
        return read_chunk(payload, name=given.decode())

    def check(chunk: Any) -> str | None:
        return None if isinstance(chunk, Chunk) else f"returned {type(chunk).__name__}"

    # every seed's name ends the same way: a rejection must name the file it was given
    label = name.split("_", 1)[1]
    return Target("read_chunk", call, TelemetryError, _telemetry_reason, inputs(), label, check)


def chunk_name_target() -> Target:
    """``read_chunk`` on a valid payload under names from outside (MQTT ``filename``)."""
    from nrt.telemetry.formats import TelemetryError, read_chunk

    payload = seeds.chunks()["acs"]
    names = st.one_of(
        st.integers(0, 10**7).map(lambda n: f"acs_025600010010_{n:06d}.fits"),  # accepted
        st.text(max_size=300),
        st.sampled_from(["", ".", "..", "../acs_025600010010_000001.fits", "/etc/passwd"]),
        st.from_regex(
            r"(acs|isgri|hk|pointing|x)_[0-9A-Za-z]{10,13}_[0-9]{1,8}\.fits?", fullmatch=True
        ),
    )

    def call(data: bytes) -> Any:
        return read_chunk(payload, name=data.decode("utf-8", "surrogatepass"))

    def reason(exc: BaseException, label: str) -> str | None:
        return _telemetry_reason(exc, "")

    return Target(
        "read_chunk(name)",
        call,
        TelemetryError,
        reason,
        names.map(lambda s: s.encode("utf-8", "surrogatepass")),
    )


def fitsio_target() -> Target:
    """The hand-written FITS reader alone: walk every HDU, decode every table."""
    from nrt.telemetry.errors import TelemetryError
    from nrt.telemetry.fitsio import table_columns, walk_hdus

    label = "fuzz.fits"
    fits_seeds = [*seeds.chunks().values(), seeds.lightcurve_fits()]

    def call(data: bytes) -> Any:
        out = []
        for hdu in walk_hdus(data, label):
            if hdu.header.get("XTENSION") == "BINTABLE":
                out.append(table_columns(hdu, data, label))
        return out

    strategy = st.one_of(
        mut.fits_mutations(fits_seeds), mut.raw_bytes(fits_seeds[0][:2880]), mut.raw_bytes()
    )
    return Target("fitsio", call, TelemetryError, _telemetry_reason, strategy, label)


class _FileInput:
    """One reusable file for parsers that take a path."""

    def __init__(self, suffix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nrt-fuzz-"))
        self.path = self.dir / f"input{suffix}"

    def write(self, data: bytes) -> Path:
        self.path.write_bytes(data)
        return self.path


def lightcurve_target() -> Target:
    """``read_lightcurve`` on mutated FITS (plain and gzipped) and text light curves."""
    import gzip

    from nrt.telemetry.errors import TelemetryError
    from nrt.telemetry.lightcurves import LightCurve, read_lightcurve

    file = _FileInput(".lc")
    fits_seed = seeds.lightcurve_fits()
    strategy = st.one_of(
        mut.fits_mutations([fits_seed]),
        mut.fits_mutations([fits_seed]).map(lambda b: gzip.compress(b, mtime=0)),
        mut.text_mutations(seeds.LIGHTCURVE_TEXT),
        mut.raw_bytes(fits_seed[:2880]),
        mut.raw_bytes(b"\x1f\x8b"),
        mut.raw_bytes(),
    )

    def check(lc: Any) -> str | None:
        import numpy as np

        if not isinstance(lc, LightCurve):
            return f"returned {type(lc).__name__}"
        if not len(lc.time) or len(lc.time) != len(lc.counts):
            return "no bins, or times and counts of different lengths"
        if not (np.all(np.isfinite(lc.time)) and np.all(np.diff(lc.time) >= 0)):
            return "bin times not finite and sorted"
        return None

    return Target(
        "read_lightcurve",
        lambda data: read_lightcurve(file.write(data)),
        TelemetryError,
        _telemetry_reason,
        strategy,
        str(file.path),
        check,
    )


# ------------------------------------------------------------------ alerts


def alert_target() -> Target:
    """``parse_message`` (``nrt alerts follow``) on mutated alert JSON and raw bytes."""
    from nrt.alerts.follow import parse_message
    from nrt.alerts.model import AlertFormatError

    topic = "nrt/alerts/acs"
    documents = seeds.alert_documents()
    strategy = st.one_of(
        mut.json_mutations(documents),
        mut.json_mutations(documents),
        mut.nested(),
        mut.JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(["1" * 5000, "1e999", "NaN", '"\\ud800"', "[1e99999]"]).map(str.encode),
        mut.raw_bytes(),
    )

    def reason(exc: BaseException, label: str) -> str | None:
        text = str(exc)
        if label not in text:
            return None
        return normalize(text.split(label, 1)[1].lstrip(": "))

    def check(result: Any) -> str | None:
        alert, _document = result
        try:
            hash(alert.key)  # follow() deduplicates on it
        except TypeError as exc:
            return f"alert key {alert.key!r:.80} is not hashable ({exc})"
        if not isinstance(alert.record_number, int) or isinstance(alert.record_number, bool):
            return f"record_number {alert.record_number!r:.40} is not an integer"
        if not isinstance(alert.id, str) or not alert.id:
            return f"id {alert.id!r:.40} is not a non-empty string"
        return None

    return Target(
        "alerts.parse_message",
        lambda data: parse_message(data, topic),
        AlertFormatError,
        reason,
        strategy,
        topic,
        check,
    )


# ------------------------------------------------------------------ configuration


def _config_reason(exc: BaseException, label: str) -> str | None:
    from nrt.config import ConfigError

    assert isinstance(exc, ConfigError)
    if not exc.problems or not all(p.strip() for p in exc.problems):
        return None
    if label and label != exc.source:
        return None
    return normalize(exc.problems[0])


def _config_check(config: Any) -> str | None:
    import dataclasses
    import math

    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                return f"[{section.name}] {f.name} = {v!r} was accepted"
    return None


def config_file_target() -> Target:
    """``config.load`` on mutated copies of nrt.example.toml and raw bytes."""
    from nrt.config import ConfigError, load

    file = _FileInput(".toml")
    seed = seeds.example_toml()
    strategy = st.one_of(
        mut.toml_text_mutations(seed), mut.toml_text_mutations(seed), mut.raw_bytes()
    )
    return Target(
        "config.load",
        lambda data: load(file.write(data)),
        ConfigError,
        _config_reason,
        strategy,
        str(file.path),
        _config_check,
    )


def config_document_target() -> Target:
    """``config.parse`` on the example's parsed TOML with values replaced (past the syntax)."""
    from nrt.config import ConfigError, parse

    seed = seeds.example_toml()
    strategy = mut.toml_documents(seed).map(lambda d: json.dumps(d).encode())
    return Target(
        "config.parse",
        lambda data: parse(json.loads(data), "fuzz.toml"),
        ConfigError,
        _config_reason,
        strategy,
        "fuzz.toml",
        _config_check,
    )


# ------------------------------------------------------------------ MQTT telemetry payloads


@dataclass
class _Message:
    """What ``MqttSource.handle`` reads of an aiomqtt message."""

    topic: str
    payload: bytes
    properties: Any
    qos: int = 1


class MqttTarget(Target):
    """``MqttSource.handle`` with a real ingest record and quarantine: it must never raise;
    each payload is queued once, counted as a duplicate, or quarantined with a reason file
    inside the quarantine directory."""

    def __init__(self) -> None:
        from nrt.telemetry.ingest import IngestLog, Quarantine
        from nrt.telemetry.mqttsource import MqttSource

        self.dir = Path(tempfile.mkdtemp(prefix="nrt-fuzz-mqtt-"))
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        ingest = IngestLog(self.dir / "ingest.sqlite")
        self.quarantine = self.dir / "quarantine"
        self.source = MqttSource(
            self.queue, ingest, Quarantine(self.quarantine, ingest), store_dir=self.dir / "store"
        )
        chunks = seeds.chunks()

        @st.composite
        def messages(draw: st.DrawFn) -> bytes:
            kind = draw(st.sampled_from([*sorted(chunks), "other", ""]))
            payload = draw(
                st.one_of(
                    mut.fits_mutations(list(chunks.values())),
                    st.sampled_from(list(chunks.values())),
                    mut.raw_bytes(),
                )
            )
            filename = draw(
                st.one_of(
                    st.none(),
                    st.sampled_from([seeds.chunk_name(k) for k in chunks]),
                    st.sampled_from(
                        [
                            "../../etc/passwd",
                            "/tmp/x",
                            "a\0b",
                            ".hidden",
                            "..",
                            "x" * 300,
                            "ünï.fits",
                            "a/b.fits",
                        ]
                    ),
                    st.text(max_size=60),
                )
            )
            head = json.dumps({"kind": kind, "filename": filename}).encode()
            return head + b"\n" + payload

        super().__init__(
            "MqttSource.handle", self._call, Exception, lambda e, label: None, messages()
        )

    def _call(self, data: bytes) -> Any:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        head, _, payload = data.partition(b"\n")
        meta = json.loads(head)
        props = Properties(PacketTypes.PUBLISH)
        if meta["filename"] is not None:
            props.UserProperty = ("filename", meta["filename"])
        message = _Message(f"nrt/telemetry/{meta['kind']}", payload, props)
        return message

    def run(self, data: bytes) -> Outcome:
        message = self._call(data)
        before = set(self.quarantine.iterdir())
        queued = self.queue.qsize()
        try:
            self.loop.run_until_complete(asyncio.wait_for(self.source.handle(message), TIMEOUT))
        except TimeoutError:
            return Outcome("hang", f"no answer within {TIMEOUT} s")
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc!s:.300}")
        if self.queue.qsize() > queued:
            self.queue.get_nowait()
            return Outcome("accepted")
        new = set(self.quarantine.iterdir()) - before
        reasons = [p for p in new if p.name.endswith(".reason")]
        if not new:
            return Outcome("accepted", "duplicate")
        outside = [p for p in new if p.resolve().parent != self.quarantine.resolve()]
        if len(reasons) != 1 or len(new) != 2 or outside:
            return Outcome("crash", f"quarantine wrote {sorted(p.name for p in new)}")
        reason = json.loads(reasons[0].read_text())
        if not reason.get("problem") or not reason.get("fix") or not reason.get("name"):
            return Outcome("crash", f"reason file without problem, fix or name: {reason}")
        return Outcome("rejected", normalize(reason["problem"]))


def all_targets() -> list[Target]:
    """Every parser of outside data, cheapest first."""
    return [
        chunk_target(),
        chunk_name_target(),
        fitsio_target(),
        lightcurve_target(),
        alert_target(),
        config_file_target(),
        config_document_target(),
        MqttTarget(),
    ]
