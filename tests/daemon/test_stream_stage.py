"""Prompt alerting: preliminary -> initial alert; complete trigger -> update or retraction."""

from __future__ import annotations

from types import SimpleNamespace

from detectors.trigger import Trigger
from tests.daemon.harness import through_stream_stage


def trigger(
    t: float,
    flags: tuple[str, ...],
    significance: float = 8.0,
    band: tuple[float, float] | None = None,
) -> Trigger:
    utc = f"2026-01-01T00:{int(t) // 60:02d}:{t % 60:06.3f}Z"
    return Trigger(
        "ISGRI" if band else "SPI-ACS",
        utc,
        t,
        0.2,
        significance,
        0.5,
        5000.0,
        4000.0,
        band,
        flags,
    )


def run(triggers: list[Trigger]) -> list:
    async def drive(stage) -> None:
        for t in triggers:
            await stage._alert(t, 0.0)

    return through_stream_stage(SimpleNamespace(enabled=False), drive)


def test_a_burst_is_announced_at_once_then_refined():
    out = run([trigger(600.0, ("preliminary",), 6.0), trigger(600.0, (), 25.0)])
    assert [(a.alert_type, a.record_number) for a in out] == [("initial", 1), ("update", 2)]
    assert out[0].id == out[1].id and out[1].rate_snr == 25.0


def test_a_background_variation_is_retracted():
    out = run([trigger(600.0, ("preliminary",)), trigger(600.1, ("background_variation",))])
    assert [a.alert_type for a in out] == ["initial", "retraction"]


def test_a_complete_trigger_without_a_preliminary_is_an_initial_alert():
    out = run([trigger(600.0, ()), trigger(900.0, ("preliminary",))])
    assert [a.alert_type for a in out] == ["initial", "initial"] and out[0].id != out[1].id


def test_seen_again_after_a_restart_nothing_new_is_committed():
    first = [trigger(600.0, ("preliminary",)), trigger(600.0, ())]
    out = run(first + first)
    assert len(out) == 2


def test_two_bands_of_one_excess_completing_in_different_chunks_are_one_alert():
    """ISGRI's bands report separately; one chunk may complete one band's trigger and the
    next chunk the other's, with a slightly different time. Still one alert: the more
    significant band's complete trigger updates it, a weaker one or another band's
    preliminary adds nothing, and a later excess in another band is a new alert."""
    low, high = (15.0, 50.0), (50.0, 300.0)
    out = run(
        [
            trigger(600.0, ("preliminary",), 6.0, low),
            trigger(600.05, ("preliminary",), 5.5, high),
            trigger(600.0, (), 9.0, low),
            trigger(600.1, (), 12.0, high),
            trigger(600.05, (), 7.0, low),
            trigger(900.0, ("preliminary",), 6.0, high),
        ]
    )
    assert [(a.alert_type, a.record_number) for a in out] == [
        ("initial", 1),
        ("update", 2),
        ("update", 3),
        ("initial", 1),
    ]
    assert len({a.id for a in out[:3]}) == 1 and out[3].id != out[0].id
    assert [a.rate_snr for a in out[:3]] == [6.0, 9.0, 12.0]
