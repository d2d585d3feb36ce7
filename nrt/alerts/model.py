"""The alert model: one burst, several revisions, GCN unified-schema JSON.

An `Alert` is immutable. The daemon makes the first record from a detector's
trigger record (`Alert.initial_from_trigger`) and derives later revisions from
it (`updated`, `retracted`); each revision keeps the `id` and increments
`record_number`, which is what subscribers deduplicate on (DESIGN.md section 7).
The trigger record is duck-typed so that `nrt` never imports `detectors`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, Protocol

#: The URI of nrt's trigger notice schema; every JSON alert names it in "$schema".
SCHEMA_ID = "urn:nrt:schema:notices:trigger:v1"
#: The @nasa-gcn/schema release our schema composes (its core "$ref"s name it).
GCN_SCHEMA_VERSION = "7.2.3"
DEFAULT_IVORN_BASE = "ivo://nrt.invalid/alerts"
DEFAULT_MISSION = "INTEGRAL"
SECONDS_PER_DAY = 86400.0
#: Default containment of ra_dec_error: the detectors report 90 % radii.
CONTAINMENT = 0.9

AlertType = Literal["initial", "update", "retraction"]
AlertTense = Literal["current", "archival", "planned", "injection", "commanded", "test"]
TENSES = ("current", "archival", "planned", "injection", "commanded", "test")


class AlertFormatError(ValueError):
    """A received or stored alert does not have the shape nrt publishes."""


class TriggerRecord(Protocol):
    """What the detectors hand over (detectors/trigger.py); only these fields are read."""

    instrument: str
    time_utc: str
    time_met: float
    timescale: float
    significance: float
    far_per_day: float
    counts: float
    background: float
    band: tuple[float, float] | None
    flags: tuple[str, ...]
    pointing: str | None


def schema_text() -> str:
    """nrt's trigger notice JSON schema, as shipped in the package."""
    return resources.files("nrt.alerts").joinpath("schema/trigger.schema.json").read_text()


def utc_iso(value: str | datetime) -> str:
    """Normalize an ISO 8601 time (naive means UTC) to ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AlertFormatError(
                f"time {value!r} is not ISO 8601; give e.g. 2026-01-02T03:04:05.678Z"
            ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def slug(text: str) -> str:
    """A lowercase token safe in ids, IVORNs and MQTT topic levels."""
    token = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    if not token:
        raise AlertFormatError(f"instrument name {text!r} has no usable characters")
    return token


def make_alert_id(instrument: str, trigger_time: str) -> str:
    """A stable id from instrument and trigger time (ms): the same trigger found again
    after a restart gets the same id, so the outbox does not publish it twice."""
    t = datetime.fromisoformat(utc_iso(trigger_time).replace("Z", "+00:00"))
    return f"{slug(instrument)}-{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}"


def _now() -> str:
    return utc_iso(datetime.now(UTC))


def _field(obj: Any, name: str) -> Any:
    """Read `name` from a mapping or an object; a clear error if it is missing."""
    if isinstance(obj, Mapping):
        if name in obj:
            return obj[name]
    elif hasattr(obj, name):
        return getattr(obj, name)
    raise AlertFormatError(f"{type(obj).__name__} has no field {name!r}, which alerts need")


@dataclass(frozen=True)
class Localization:
    """A sky position with a circular error radius (deg, `containment` probability)."""

    ra: float
    dec: float
    ra_dec_error: float
    containment: float = CONTAINMENT

    def __post_init__(self) -> None:
        if not (0.0 <= self.ra < 360.0 and -90.0 <= self.dec <= 90.0 and self.ra_dec_error > 0):
            raise AlertFormatError(
                f"localization ra={self.ra} dec={self.dec} err={self.ra_dec_error}: "
                "need 0 <= ra < 360, -90 <= dec <= 90 and a positive error radius (deg)"
            )

    @classmethod
    def coerce(cls, loc: Any) -> Localization:
        """From a `Localization`, a detector's record or a mapping with ra, dec, ra_dec_error."""
        if isinstance(loc, cls):
            return loc
        containment = (
            loc.get("containment_probability", CONTAINMENT)
            if isinstance(loc, Mapping)
            else getattr(loc, "containment", CONTAINMENT)
        )
        return cls(
            ra=float(_field(loc, "ra")) % 360.0,
            dec=float(_field(loc, "dec")),
            ra_dec_error=float(_field(loc, "ra_dec_error")),
            containment=float(containment),
        )


@dataclass(frozen=True)
class Alert:
    """One revision of one burst alert; field names are the GCN unified schema's."""

    id: str
    record_number: int
    alert_type: AlertType
    alert_tense: AlertTense
    alert_datetime: str
    mission: str
    instrument: str
    trigger_time: str
    trigger_time_met: float | None = None
    rate_snr: float | None = None
    rate_duration: float | None = None
    rate_energy_range: tuple[float, float] | None = None
    far: float | None = None  # Hz, as GCN; the detectors' per-day rate / 86400
    net_count_rate: float | None = None
    background_count_rate: float | None = None
    localization: Localization | None = None
    pointing: str | None = None
    flags: tuple[str, ...] = ()
    additional_info: str | None = None
    ivorn_base: str = field(default=DEFAULT_IVORN_BASE, compare=False)

    def __post_init__(self) -> None:
        if self.alert_tense not in TENSES:
            raise AlertFormatError(f"alert_tense {self.alert_tense!r}: use one of {TENSES}")
        if self.alert_type not in ("initial", "update", "retraction"):
            raise AlertFormatError(
                f"alert_type {self.alert_type!r}: use initial, update or retraction"
            )
        if self.record_number < 1:
            raise AlertFormatError(f"record_number {self.record_number}: must be >= 1")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def initial_from_trigger(
        cls,
        trigger: TriggerRecord,
        *,
        tense: AlertTense = "current",
        mission: str = DEFAULT_MISSION,
        ivorn_base: str = DEFAULT_IVORN_BASE,
        now: str | None = None,
    ) -> Alert:
        """The first record (record_number 1) of the alert for a detector trigger."""
        trigger_time = utc_iso(_field(trigger, "time_utc"))
        instrument = str(_field(trigger, "instrument"))
        return cls(
            id=make_alert_id(instrument, trigger_time),
            record_number=1,
            alert_type="initial",
            alert_tense=tense,
            alert_datetime=now or _now(),
            mission=mission,
            instrument=instrument,
            trigger_time=trigger_time,
            ivorn_base=ivorn_base,
            **_measurements(trigger),
        )

    def updated(
        self,
        *,
        localization: Any = None,
        trigger: TriggerRecord | None = None,
        note: str | None = None,
        now: str | None = None,
    ) -> Alert:
        """The next record: a localization added and/or the measurements refined."""
        if self.alert_type == "retraction":
            raise AlertFormatError(f"alert {self.id} was retracted; it cannot be updated")
        if localization is None and trigger is None and note is None:
            raise AlertFormatError("an update needs a localization, a refined trigger or a note")
        changes: dict[str, Any] = {}
        if localization is not None:
            changes["localization"] = Localization.coerce(localization)
        if trigger is not None:
            changes.update(_measurements(trigger))
        if note is not None:
            changes["additional_info"] = note
        return self._next("update", now, **changes)

    def retracted(self, reason: str, *, now: str | None = None) -> Alert:
        """The last record: the trigger is withdrawn (instrumental, particle event, ...)."""
        if not reason.strip():
            raise AlertFormatError("a retraction needs a reason subscribers can read")
        return self._next("retraction", now, additional_info=reason)

    def _next(self, alert_type: AlertType, now: str | None, **changes: Any) -> Alert:
        return replace(
            self,
            record_number=self.record_number + 1,
            alert_type=alert_type,
            alert_datetime=now or _now(),
            **changes,
        )

    # -- identity -------------------------------------------------------------------------

    @property
    def key(self) -> tuple[str, int]:
        """What subscribers deduplicate on."""
        return (self.id, self.record_number)

    def ivorn_of(self, record_number: int) -> str:
        """IVORN of any record of this alert (records are numbered, so earlier ones are known)."""
        return f"{self.ivorn_base}#{self.id}-{record_number}"

    @property
    def ivorn(self) -> str:
        return self.ivorn_of(self.record_number)

    @property
    def topic_instrument(self) -> str:
        return slug(self.instrument)

    # -- GCN JSON ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The GCN unified-schema notice (None fields left out)."""
        out: dict[str, Any] = {"$schema": SCHEMA_ID}
        for f in dataclasses.fields(self):
            if f.name in ("localization", "ivorn_base", "flags"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        if self.flags:
            out["flags"] = list(self.flags)
        if self.localization is not None:
            loc = self.localization
            out.update(
                ra=loc.ra,
                dec=loc.dec,
                ra_dec_error=loc.ra_dec_error,
                containment_probability=loc.containment,
            )
        out["ivorn"] = self.ivorn
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "alert") -> Alert:
        """Back from `to_json` output (the outbox, or a message received by `follow`)."""
        if not isinstance(data, Mapping):
            raise AlertFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("$schema") != SCHEMA_ID:
            raise AlertFormatError(
                f"{source}: '$schema' is {data.get('$schema')!r}, not {SCHEMA_ID!r}; "
                "this is not an nrt trigger notice"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"localization", "ivorn_base"}
        kwargs: dict[str, Any] = {k: data[k] for k in names if k in data}
        for required in ("id", "record_number", "alert_type", "alert_tense", "instrument"):
            if required not in kwargs:
                raise AlertFormatError(f"{source}: field {required!r} is missing")
        # A received message is outside data: wrong types are a format error, not a crash
        # (and `id`, `record_number` must be hashable: subscribers deduplicate on them).
        if not isinstance(kwargs["id"], str) or not kwargs["id"]:
            raise AlertFormatError(f"{source}: field 'id' must be a non-empty string")
        if type(kwargs["record_number"]) is not int:
            raise AlertFormatError(f"{source}: field 'record_number' must be an integer")
        try:
            if "rate_energy_range" in kwargs:
                kwargs["rate_energy_range"] = tuple(kwargs["rate_energy_range"])
            kwargs["flags"] = tuple(kwargs.get("flags", ()))
            if "ra" in data:
                kwargs["localization"] = Localization.coerce(data)
            ivorn = data.get("ivorn", "")
            if "#" in ivorn:
                kwargs["ivorn_base"] = ivorn.split("#", 1)[0]
            return cls(**kwargs)
        except AlertFormatError as exc:
            raise AlertFormatError(f"{source}: {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise AlertFormatError(f"{source}: a field has the wrong type ({exc})") from exc


def _measurements(trigger: TriggerRecord) -> dict[str, Any]:
    """The trigger's numbers in GCN terms (rates over the trigger timescale, FAR in Hz)."""
    timescale = float(_field(trigger, "timescale"))
    if timescale <= 0:
        raise AlertFormatError(f"trigger timescale {timescale}: must be positive (seconds)")
    counts = float(_field(trigger, "counts"))
    background = float(_field(trigger, "background"))
    band = _field(trigger, "band")
    pointing = _field(trigger, "pointing")
    return {
        "trigger_time_met": float(_field(trigger, "time_met")),
        "rate_snr": float(_field(trigger, "significance")),
        "rate_duration": timescale,
        "rate_energy_range": None if band is None else (float(band[0]), float(band[1])),
        "far": float(_field(trigger, "far_per_day")) / SECONDS_PER_DAY,
        "net_count_rate": (counts - background) / timescale,
        "background_count_rate": background / timescale,
        "pointing": None if pointing is None else str(pointing),
        "flags": tuple(str(f) for f in _field(trigger, "flags")),
    }
