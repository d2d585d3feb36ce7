"""A backlog fed to the stream detectors at once gives what feeding it chunk by chunk gives."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from detectors.stream import StreamTriggers
from nrt.config import TriggerConfig
from nrt.daemon.replay import ordered_files
from nrt.telemetry.formats import read_chunk
from tests.daemon.harness import through_stream_stage


@pytest.fixture(scope="module")
def chunks(telemetry):
    sim_dir, _truth = telemetry
    return [read_chunk(path) for path in ordered_files(sim_dir)]


def _batches(items: list, seed: int) -> list[list]:
    rng, out, i = random.Random(seed), [], 0
    while i < len(items):
        n = rng.choice((1, 2, 7, 64, 200))
        out.append(items[i : i + n])
        i += n
    return out


def _same_event(a, b) -> bool:
    return (
        a.instrument == b.instrument
        and ("preliminary" in a.flags) == ("preliminary" in b.flags)
        and abs(a.time_met - b.time_met) <= max(a.timescale, b.timescale)
    )


def test_push_many_finds_the_triggers_push_finds_with_their_pointings(chunks):
    config = TriggerConfig(instruments=["acs", "isgri"], prompt=True)
    one_by_one = StreamTriggers(config)
    expected = [t for chunk in chunks for t in one_by_one.push(chunk)] + one_by_one.flush()
    together = StreamTriggers(config)
    found = [t for batch in _batches(chunks, 1) for t in together.push_many(batch)]
    found += together.flush()
    assert {t.instrument for t in expected} == {"SPI-ACS", "ISGRI"}, "both streams fired"
    # one band: the same triggers, field for field
    acs = [dataclasses.astuple(t) for t in expected if t.instrument == "SPI-ACS"]
    assert sorted(dataclasses.astuple(t) for t in found if t.instrument == "SPI-ACS") == sorted(acs)
    # three bands: the same events, each preliminary then complete; a batch may merge
    # two bands' triggers of one event that chunk by chunk completed in different calls
    assert all(any(_same_event(t, f) for f in found) for t in expected)
    assert all(any(_same_event(f, t) for t in expected) for f in found)
    # a trigger belongs to the pointing of the chunk holding its time
    for t in found:
        holder = max((c for c in chunks if c.tstart <= t.time_met), key=lambda c: c.tstart)
        assert t.pointing == holder.pointing


def _alerts(batches: list[list]) -> list[tuple[str, int, str]]:
    async def drive(stage) -> None:
        for batch in batches:
            await stage.feed_many([(chunk, 0.0) for chunk in batch])
        await stage.finish()

    committed = through_stream_stage(TriggerConfig(prompt=True), drive)
    return sorted((a.id, a.record_number, a.alert_type) for a in committed)


def test_a_late_chunk_inside_a_batch_is_looked_at_again_as_alone(chunks, telemetry):
    """The chunk holding a burst arrives after its successor: found either way."""
    _sim, truth = telemetry
    acs = [c for c in chunks if c.kind == "acs"]
    onset = truth["grbs"][0]["onset"]
    i = next(i for i, c in enumerate(acs) if c.tstart <= onset < c.tstop)
    disordered = [*acs[:i], acs[i + 1], acs[i], *acs[i + 2 :]]
    alone = _alerts([[c] for c in disordered])
    assert alone, "the burst in the late chunk is alerted"
    assert _alerts([disordered]) == alone  # one batch: the late chunk inside
    assert _alerts(_batches(disordered, 2)) == alone


def test_a_chunk_the_engine_refuses_costs_only_itself_in_a_batch(chunks, telemetry, caplog):
    """A repeated bin time (the reader allows equal times; the engine does not): alone or
    inside a batch, only that chunk is skipped, and the burst after it is still found."""
    _sim, truth = telemetry
    acs = [c for c in chunks if c.kind == "acs"]
    onset = truth["grbs"][0]["onset"]
    i = next(i for i, c in enumerate(acs) if c.tstart <= onset < c.tstop)
    bad = acs[i - 1]
    repeated = {k: np.insert(v, 1, v[0]) for k, v in bad.columns.items()}
    broken = [*acs[: i - 1], dataclasses.replace(bad, columns=repeated), *acs[i:]]
    config = TriggerConfig(prompt=True)
    one_by_one = StreamTriggers(config)
    expected = [t for chunk in broken for t in one_by_one.push(chunk)] + one_by_one.flush()
    together = StreamTriggers(config)
    found = together.push_many(broken) + together.flush()
    key = sorted(dataclasses.astuple(t) for t in expected)
    assert sorted(dataclasses.astuple(t) for t in found) == key
    assert any(abs(t.time_met - onset) < 2 for t in found), "the burst after it is found"
    assert caplog.text.count(f"{bad.name}: bins overlap") == 2  # once alone, once in the batch
