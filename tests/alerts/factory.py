"""Alerts as the daemon would make them, from the detectors' own trigger record."""

from __future__ import annotations

from detectors.trigger import Trigger
from nrt.alerts import Alert


def make_trigger(**overrides) -> Trigger:
    fields = {
        "instrument": "acs",
        "time_utc": "2026-03-14T01:59:26.535Z",
        "time_met": 8123456.789,
        "timescale": 0.25,
        "significance": 9.4,
        "far_per_day": 0.02,
        "counts": 31000.0,
        "background": 22500.0,
        "band": (80.0, 8000.0),
        "flags": ("near_gap",),
        "pointing": "029400210010",
    }
    fields.update(overrides)
    return Trigger(**fields)


def make_burst(n_ids: int, per_id: int, tense: str = "test") -> list:
    """`n_ids` bursts with `per_id` revisions each (initial, updates, a retraction
    last when per_id > 2), interleaved across bursts as a busy day would be."""
    chains = []
    for i in range(n_ids):
        trigger = make_trigger(time_utc=f"2026-03-14T02:{i // 60:02d}:{i % 60:02d}.125Z")
        chain = [Alert.initial_from_trigger(trigger, tense=tense)]
        for r in range(1, per_id):
            if r == per_id - 1 and per_id > 2:
                chain.append(chain[-1].retracted(f"test retraction of burst {i}"))
            else:
                loc = {"ra": (10.0 * i + r) % 360, "dec": -20.0 + r, "ra_dec_error": 0.5 / r}
                chain.append(chain[-1].updated(localization=loc))
        chains.append(chain)
    return [chain[r] for r in range(per_id) for chain in chains]
