"""The short fuzz run inside `make test`: every parser of outside data, a few dozen
generated inputs each (structured mutations of valid inputs and raw bytes).

Property: a parser accepts the input or rejects it with its documented error whose
message names the input and the problem; nothing else escapes, nothing hangs (5 s per
input). The nightly-sized run is `make fuzz` (tests/fuzz/run.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.targets import Target, all_targets

TARGETS = {t.name: t for t in all_targets()}


@pytest.mark.parametrize("name", list(TARGETS))
def test_parser_accepts_or_rejects_with_a_reason(name: str) -> None:
    target: Target = TARGETS[name]
    examples = 25 if name == "MqttSource.handle" else 60

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(target.strategy)
    def check(data: bytes) -> None:
        outcome = target.run(data)
        assert not outcome.failed, f"{target.name}: {outcome.status}: {outcome.reason}"

    check()


def test_the_harness_sees_a_crash_and_a_hang() -> None:
    """The property can fail: an undocumented exception and a slow parser are caught."""
    import time

    from hypothesis import strategies as st

    from tests.fuzz import targets

    def crash(data: bytes) -> None:
        raise KeyError("boom")

    def slow(data: bytes) -> None:
        time.sleep(10)

    def unclear(data: bytes) -> None:
        raise ValueError("")

    reason = targets.normalize
    crashing = Target("crash", crash, ValueError, lambda e, label: reason(str(e)), st.just(b""))
    assert crashing.run(b"x").status == "crash"
    unclear_target = Target("u", unclear, ValueError, lambda e, label: str(e) or None, st.just(b""))
    assert unclear_target.run(b"x").status == "crash"
    original = targets.TIMEOUT
    targets.TIMEOUT = 0.2
    try:
        hanging = Target("slow", slow, ValueError, lambda e, label: "", st.just(b""))
        assert hanging.run(b"x").status == "hang"
    finally:
        targets.TIMEOUT = original


@pytest.mark.parametrize(
    ("name", "data", "expect"),
    [
        ("alerts.parse_message", b"[" * 100_000, "is not JSON"),
        ("alerts.parse_message", b"1" * 5000, "is not JSON"),
        ("alerts.parse_message", None, "must be a non-empty string"),
        ("config.parse", b'{"cache": {"max_bytes": "' + b"9" * 400 + b'"}}', "max_bytes"),
        ("config.parse", b'{"trigger": {"far_per_day": NaN}}', "far_per_day"),
    ],
)
def test_bugs_found_by_fuzzing_stay_fixed(name: str, data: bytes | None, expect: str) -> None:
    """Each was a crash (RecursionError, ValueError, unhashable key, OverflowError) or an
    accepted NaN before the fix."""
    import json

    from tests.fuzz import seeds

    if data is None:  # an alert whose id is a list: follow() could not deduplicate it
        document = json.loads(seeds.alert_documents()[0])
        document["id"] = []
        data = json.dumps(document).encode()
    outcome = TARGETS[name].run(data)
    assert outcome.status == "rejected", outcome
    assert expect.split()[0] in outcome.reason or expect in outcome.reason, outcome


def _with_card(data: bytes, hdu: int, key: str, value: str) -> bytes:
    """`data` with the value of `key` in header number `hdu` replaced."""
    from tests.fuzz import mutations

    cards = mutations.card_offsets(data)
    hits = [i for i, (_, k) in enumerate(cards) if k == key]
    return mutations._apply(data, cards, ("value", hits[hdu], value))


def test_a_table_whose_bitpix_promises_too_little_data_is_refused() -> None:
    """Was a bare ValueError from numpy.frombuffer (BITPIX 16 on a BINTABLE)."""
    from tests.fuzz import seeds

    # BITPIX 2 makes the header promise 0 data bytes: the file ends with the table's header
    data = _with_card(seeds.chunks()["hk"], 1, "BITPIX", "2")[: 2 * 2880]
    outcome = TARGETS["fitsio"].run(data)
    assert outcome.status == "rejected" and "do not fit" in outcome.reason, outcome


def test_a_light_curve_with_tfields_1e308_is_refused_at_once() -> None:
    """Was a loop over 1e308 column numbers (a hang)."""
    from tests.fuzz import seeds

    data = _with_card(seeds.lightcurve_fits(), 0, "TFIELDS", "1E308")
    outcome = TARGETS["read_lightcurve"].run(data)
    assert outcome.status == "rejected" and "TFIELDS" in outcome.reason, outcome
