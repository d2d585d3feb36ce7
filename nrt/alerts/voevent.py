"""The same alert as a VOEvent 2.0 packet (lxml), for VOEvent brokers and their clients.

Every record has its own IVORN (``<base>#<id>-<record_number>``), so later
records cite earlier ones without any lookup: an update `supersedes` the previous
record and is a `followup` of the first; a retraction retracts every earlier one.
"""

from __future__ import annotations

from lxml import etree

from nrt.alerts.model import Alert
from nrt.alerts.text import summary

VOEVENT_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{VOEVENT_NS} http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd"
COORD_SYSTEM = "UTC-ICRS-GEO"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str):
    el = etree.SubElement(parent, tag, {k: v for k, v in attrib.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _param(parent, name: str, value, *, unit=None, ucd=None, description=None) -> None:
    if value is None:
        return
    data_type = (
        "int"
        if isinstance(value, int) and not isinstance(value, bool)
        else "float"
        if isinstance(value, float)
        else "string"
    )
    el = _sub(parent, "Param", name=name, value=str(value), dataType=data_type, unit=unit, ucd=ucd)
    if description:
        _sub(el, "Description", description)


def _citations(root, alert: Alert) -> None:
    if alert.record_number == 1:
        return
    cites = _sub(root, "Citations")
    if alert.alert_type == "retraction":
        for n in range(1, alert.record_number):
            _sub(cites, "EventIVORN", alert.ivorn_of(n), cite="retraction")
        _sub(cites, "Description", f"Retraction: {alert.additional_info}")
        return
    _sub(cites, "EventIVORN", alert.ivorn_of(alert.record_number - 1), cite="supersedes")
    if alert.record_number > 2:
        _sub(cites, "EventIVORN", alert.ivorn_of(1), cite="followup")
    _sub(cites, "Description", "Update: localization added or measurements refined")


def to_voevent(alert: Alert, *, author_ivorn: str | None = None) -> bytes:
    """Serialize `alert` as VOEvent 2.0 XML; ``role="test"`` unless the tense is current."""
    role = "observation" if alert.alert_tense == "current" else "test"
    root = etree.Element(
        f"{{{VOEVENT_NS}}}VOEvent",
        nsmap={"voe": VOEVENT_NS, "xsi": XSI_NS},
        version="2.0",
        role=role,
        ivorn=alert.ivorn,
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)

    who = _sub(root, "Who")
    _sub(who, "AuthorIVORN", author_ivorn or alert.ivorn_base)
    _sub(who, "Date", alert.alert_datetime.rstrip("Z"))
    author = _sub(who, "Author")
    _sub(author, "shortName", "nrt")
    _sub(author, "contactName", f"{alert.mission} near-real-time monitoring (nrt)")

    what = _sub(root, "What")
    _param(what, "AlertId", alert.id, ucd="meta.id", description="Stable id of this burst alert")
    _param(what, "RecordNumber", alert.record_number, description="Grows with each revision")
    _param(what, "AlertType", alert.alert_type, description="initial, update or retraction")
    _param(what, "AlertTense", alert.alert_tense)
    _param(what, "Mission", alert.mission)
    _param(what, "Instrument", alert.instrument, ucd="meta.id;instr")
    _param(what, "TriggerTimeMET", alert.trigger_time_met, unit="s", ucd="time.epoch")
    _param(what, "Significance", alert.rate_snr, unit="sigma", ucd="stat.snr")
    _param(what, "Timescale", alert.rate_duration, unit="s", ucd="time.interval")
    _param(what, "FAR", alert.far, unit="Hz", ucd="stat.probability", description="False alarms")
    _param(what, "NetCountRate", alert.net_count_rate, unit="ct/s", ucd="phot.count")
    _param(what, "BackgroundCountRate", alert.background_count_rate, unit="ct/s")
    _param(what, "Pointing", alert.pointing, ucd="obs.field")
    if alert.flags:
        _param(what, "Flags", ",".join(alert.flags))
    if alert.rate_energy_range is not None:
        group = _sub(what, "Group", name="EnergyRange")
        _param(group, "Low", float(alert.rate_energy_range[0]), unit="keV", ucd="em.energy")
        _param(group, "High", float(alert.rate_energy_range[1]), unit="keV", ucd="em.energy")

    where = _sub(root, "WhereWhen")
    odl = _sub(where, "ObsDataLocation")
    _sub(odl, "ObservatoryLocation", id="GEOLUN")
    obs = _sub(odl, "ObservationLocation")
    _sub(obs, "AstroCoordSystem", id=COORD_SYSTEM)
    coords = _sub(obs, "AstroCoords", coord_system_id=COORD_SYSTEM)
    instant = _sub(_sub(coords, "Time", unit="s"), "TimeInstant")
    _sub(instant, "ISOTime", alert.trigger_time.rstrip("Z"))
    if alert.localization is not None:
        loc = alert.localization
        pos = _sub(coords, "Position2D", unit="deg")
        _sub(pos, "Name1", "RA")
        _sub(pos, "Name2", "Dec")
        value = _sub(pos, "Value2")
        _sub(value, "C1", repr(loc.ra))
        _sub(value, "C2", repr(loc.dec))
        _sub(pos, "Error2Radius", repr(loc.ra_dec_error))

    how = _sub(root, "How")
    _sub(how, "Description", f"{alert.mission} {alert.instrument} rate trigger (nrt)")

    why = _sub(root, "Why", importance="0.1" if alert.alert_type == "retraction" else "0.5")
    inference = _sub(
        why, "Inference", probability="0.0" if alert.alert_type == "retraction" else None
    )
    _sub(inference, "Concept", "process.variation.burst;em.gamma")

    _citations(root, alert)
    _sub(root, "Description", summary(alert))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
