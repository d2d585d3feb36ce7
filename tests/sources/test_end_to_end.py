"""Simulated telemetry, delivered out of order with duplicates, through inbox and tracker."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path

from nrt.telemetry.formats import parse_chunk_filename
from nrt.telemetry.pointings import PointingReady, PointingTracker
from nrt.telemetry.simulator import simulate
from tests.sources.harness import inbox_running


def test_simulated_hour_every_pointing_announced_once_and_not_again_after_restart(
    tmp_path: Path,
) -> None:
    staging = tmp_path / "staging"
    truth = simulate(
        staging, hours=1.2, seed=5, isgri_rate=20.0, chunk_seconds=20.0, truth_path=tmp_path / "t"
    )
    files = sorted(staging.glob("*.fits"))
    assert len(truth["pointings"]) >= 2
    data_files = Counter(  # per pointing, not counting its two pointing records
        parse_chunk_filename(p.name)[1] for p in files if not p.name.startswith("pointing_")
    )
    order = files[:]
    random.Random(1).shuffle(order)
    repeats = order[:5]  # delivered a second time at the end

    async def first() -> list[PointingReady]:
        async with inbox_running(tmp_path, maxsize=32) as r:
            tracker = PointingTracker(r.log, grace=3600.0)
            ready: list[PointingReady] = []

            async def consume() -> None:  # as the daemon: the tracker on the log's thread
                for _ in files:
                    chunk = await r.next(timeout=30)
                    ready.extend(await r.source.ingest.call(tracker.add, chunk))

            consumer = asyncio.create_task(consume())
            for path in order:
                os.link(path, r.inbox / f".{path.name}.part")
                os.replace(r.inbox / f".{path.name}.part", r.inbox / path.name)
            await asyncio.wait_for(consumer, 60)
            for path in repeats:  # the same bytes again, renamed over the first copy
                (r.inbox / ".again.part").write_bytes(path.read_bytes())
                os.replace(r.inbox / ".again.part", r.inbox / path.name)
            assert await r.quiet(0.5) == []
            assert r.log.counts[("inbox", "duplicate")] == len(repeats)
            assert r.reasons() == {}
            return ready

    ready = asyncio.run(first())
    assert sorted(e.pointing for e in ready) == sorted(p["id"] for p in truth["pointings"])
    assert all(e.reason == "covered" and not e.update and e.gaps == {} for e in ready)
    for event in ready:
        data = [root for kind, root in event.roots.items() if kind != "pointing"]
        assert sum(len(root.files) for root in data) == data_files[event.pointing]
        # both records, or only the closing one if the opening one came after it
        assert event.roots["pointing"].get().columns["TSTOP"].max() > event.tstart
        planned = next(p for p in truth["pointings"] if p["id"] == event.pointing)
        assert (event.tstart, event.tstop) == (planned["tstart"], planned["tstop"])
    acs = max(ready, key=lambda e: e.tstop - e.tstart).roots["acs"].get()
    assert len(acs.columns["TIME"]) == round((acs.tstop - acs.tstart) / 0.05)

    async def second() -> None:
        async with inbox_running(tmp_path) as r:  # a restart: nothing is new
            tracker = PointingTracker(r.log, grace=3600.0)
            assert await r.source.ingest.call(tracker.restore) == []
            assert await r.quiet(0.5) == []
            assert r.log.counts == Counter()

    asyncio.run(second())
