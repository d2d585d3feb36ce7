"""The alert's public formats: GCN unified-schema JSON, VOEvent 2.0, text."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from nrt.alerts import Alert, AlertFormatError, Localization, summary, to_voevent
from nrt.alerts.model import SCHEMA_ID
from tests.alerts.factory import make_trigger

NS = {"voe": "http://www.ivoa.net/xml/VOEvent/v2.0"}


def revisions(tense: str = "test") -> list[Alert]:
    """initial -> update with localization -> refined update -> retraction."""
    first = Alert.initial_from_trigger(make_trigger(), tense=tense)
    located = first.updated(localization={"ra": 271.5, "dec": -29.25, "ra_dec_error": 0.07})
    refined = located.updated(trigger=make_trigger(significance=11.2, timescale=0.5))
    return [first, located, refined, refined.retracted("particle event seen by the veto")]


def test_every_revision_validates_against_the_gcn_composed_schema(alert_validator) -> None:
    for alert in revisions() + revisions(tense="current"):
        document = json.loads(json.dumps(alert.to_json()))  # exactly what goes on the wire
        errors = sorted(alert_validator.iter_errors(document), key=str)
        assert not errors, [e.message for e in errors]


def test_schema_rejects_what_gcn_core_or_ours_forbid(alert_validator) -> None:
    good = revisions()[1].to_json()
    bad_cases = {
        "alert_tense": "rehearsal",  # not in GCN core Alert enum
        "ra": "271.5",  # GCN core Localization: number
        "rate_energy_range": [80.0],  # GCN core Statistics: two items
        "surprise_field": 1,  # unevaluatedProperties: false
    }
    for key, value in bad_cases.items():
        assert not alert_validator.is_valid({**good, key: value}), key
    retraction = revisions()[-1].to_json()
    del retraction["additional_info"]
    assert not alert_validator.is_valid(retraction)
    no_error = dict(good)
    del no_error["ra_dec_error"]
    assert not alert_validator.is_valid(no_error)


def test_revisions_keep_id_and_count_records() -> None:
    alerts = revisions()
    assert len({a.id for a in alerts}) == 1
    assert [a.record_number for a in alerts] == [1, 2, 3, 4]
    assert [a.alert_type for a in alerts] == ["initial", "update", "update", "retraction"]
    first, located, refined, _ = alerts
    assert first.id == "acs-20260314T015926.535"
    assert first.far == pytest.approx(0.02 / 86400)
    assert first.net_count_rate == pytest.approx((31000 - 22500) / 0.25)
    assert refined.localization == located.localization  # kept across a refinement
    assert refined.rate_snr == 11.2
    # Same trigger found again (a restart): same id, so the outbox can drop it.
    again = Alert.initial_from_trigger(make_trigger(time_utc="2026-03-14T01:59:26.535412"))
    assert again.id == first.id


def test_json_round_trip_is_lossless() -> None:
    for alert in revisions():
        document = json.loads(json.dumps(alert.to_json()))
        assert document["$schema"] == SCHEMA_ID
        assert Alert.from_json(document) == alert


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(AlertFormatError, match="no field 'time_utc'"):
        Alert.initial_from_trigger(object())
    with pytest.raises(AlertFormatError, match="ISO 8601"):
        Alert.initial_from_trigger(make_trigger(time_utc="yesterday"))
    with pytest.raises(AlertFormatError, match="-90 <= dec"):
        Localization(ra=10.0, dec=95.0, ra_dec_error=1.0)
    with pytest.raises(AlertFormatError, match="cannot be updated"):
        revisions()[-1].updated(note="too late")
    with pytest.raises(AlertFormatError, match="not an nrt trigger notice"):
        Alert.from_json({"id": "x"}, source="message on nrt/alerts/acs")


def test_voevent_validates_with_role_and_citations(voevent_schema) -> None:
    alerts = revisions(tense="test")
    for alert in alerts:
        xml = to_voevent(alert)
        doc = etree.fromstring(xml)
        voevent_schema.assertValid(doc)
        assert doc.get("role") == "test"
        assert doc.get("ivorn") == alert.ivorn
        params = {p.get("name"): p.get("value") for p in doc.iterfind(".//Param")}
        assert params["AlertId"] == alert.id
        assert params["RecordNumber"] == str(alert.record_number)
    cites = [
        [(e.get("cite"), e.text) for e in etree.fromstring(to_voevent(a)).iterfind(".//EventIVORN")]
        for a in alerts
    ]
    first, located, refined, _ = alerts
    assert cites[0] == []
    assert cites[1] == [("supersedes", first.ivorn)]
    assert cites[2] == [("supersedes", located.ivorn), ("followup", first.ivorn)]
    assert cites[3] == [("retraction", a.ivorn) for a in (first, located, refined)]
    position = etree.fromstring(to_voevent(located)).find(".//Position2D")
    assert float(position.findtext("Value2/C1")) == 271.5
    assert float(position.findtext("Error2Radius")) == 0.07
    live = etree.fromstring(to_voevent(revisions(tense="current")[0]))
    voevent_schema.assertValid(live)
    assert live.get("role") == "observation"


def test_voevent_schema_catches_a_broken_packet(voevent_schema) -> None:
    doc = etree.fromstring(to_voevent(revisions()[1]))
    doc.find(".//EventIVORN").set("cite", "agrees")
    assert not voevent_schema.validate(doc)


def test_text_summary_reads_like_a_circular() -> None:
    first, located, _, retraction = revisions()
    text = summary(located)
    assert "excess of 9.4 sigma on the 0.25 s timescale in 80-8000 keV" in text
    assert "RA 271.500, Dec -29.250" in text and "90% containment" in text
    assert "Net rate 34,000 count/s over a background of 90,000 count/s" in text
    assert "[TEST]" in text and "record 2" in text
    assert "RETRACTED: particle event seen by the veto" in summary(retraction)
    assert "Localization" not in summary(first)
