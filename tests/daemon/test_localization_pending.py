"""The durable record of pending localizations: what `resume` does with each case.

A real SQLite record and a real alert outbox; the daemon-level behaviour (SIGKILL,
restart, one update at the subscriber) is tests/daemon/test_localization_restart.py.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from nrt.alerts.model import Alert, Localization
from nrt.alerts.outbox import Outbox
from nrt.daemon.localization import LocalizationStage
from nrt.telemetry.ingest import IngestLog


def _alert(second: int) -> Alert:
    trigger = SimpleNamespace(
        instrument="SPI-ACS",
        time_utc=f"2026-01-01T00:00:{second:02d}.000Z",
        time_met=820540800.0 + second,
        timescale=0.2,
        significance=20.0,
        far_per_day=0.01,
        counts=5000.0,
        background=1000.0,
        band=None,
        flags=(),
        pointing="300000010010",
    )
    return Alert.initial_from_trigger(trigger, tense="test")


def _trigger_of(burst: dict) -> SimpleNamespace:
    """A bright trigger at a simulated burst's peak, as the stream detectors give it."""
    from tests.daemon.harness import utc_of

    return SimpleNamespace(
        instrument="SPI-ACS",
        time_utc=utc_of(burst["peak"]).isot + "Z",
        time_met=burst["peak"],
        timescale=0.2,
        significance=50.0,
        far_per_day=1e-6,
        counts=9000.0,
        background=4000.0,
        band=None,
        flags=(),
        pointing=burst["pointing"],
    )


def test_resume_decides_from_the_outbox_and_resolves_everything(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite", ["mqtt"])
    ingest = IngestLog(tmp_path / "ingest.sqlite")
    never, localized, retracted, open_ = (_alert(s) for s in (10, 20, 30, 40))

    async def submit(alert: Alert) -> bool:
        return outbox.add(alert) is not None

    async def latest(alert_id: str) -> Alert | None:
        return outbox.latest(alert_id)

    async def revise(record, make):  # not reached: nothing here can be localized
        raise AssertionError("no position can be found without imager data")

    async def first_life() -> LocalizationStage:
        stage = LocalizationStage(revise, state=tmp_path)
        guarded = stage.guard(submit)
        for alert in (localized, retracted, open_):
            assert await guarded(alert)
        await stage._db(stage.store.expect, never)  # killed before its outbox commit
        assert await guarded(localized.updated(localization=Localization(10.0, 20.0, 0.1)))
        assert await guarded(retracted.retracted("a test"))
        return stage

    async def second_life() -> tuple[int, LocalizationStage]:
        stage = LocalizationStage(revise, state=tmp_path)
        resumed = await stage.resume(ingest, {}, latest)
        await stage.drain()  # the open one: no imager data here, so declared impossible
        return resumed, stage

    stage = asyncio.run(first_life())
    pending = {alert_id for alert_id, _ in stage.store.pending()}
    assert pending == {never.id, localized.id, retracted.id, open_.id}
    stage.close()

    resumed, stage = asyncio.run(second_life())
    store = stage.store
    assert resumed == 1  # only the open one needed work
    assert store.state(never.id) is None  # never committed: nothing to localize
    assert store.state(localized.id) == ("resolved", "already localized before the restart")
    assert store.state(retracted.id) == ("resolved", "retracted before the restart")
    assert store.state(open_.id) == ("resolved", "no imager data or attitude")
    assert store.pending() == []
    assert outbox.latest(open_.id).record_number == 1  # nothing was issued for it
    stage.close()

    # A resolved record stays resolved when the warm-up submits the alert again.
    async def third_life() -> None:
        stage = LocalizationStage(revise, state=tmp_path)
        assert not await stage.guard(submit)(open_)  # already in the outbox
        assert stage.store.state(open_.id)[0] == "resolved"
        assert await stage.resume(ingest, {}, latest) == 0
        stage.close()

    asyncio.run(third_life())
    outbox.close()
    ingest.close()


def test_a_damaged_record_is_set_aside_counted_and_started_afresh(tmp_path):
    from nrt import metrics
    from nrt.daemon.localization import PendingLocalizations

    path = tmp_path / "localizations.sqlite"
    record = PendingLocalizations(path)
    record.expect(_alert(10))
    record.db.close()
    path.write_bytes(b"\0garbage" * 1000)
    repairs = {"database": "localizations", "action": "reset"}
    before = metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs) or 0
    again = PendingLocalizations(path)
    assert metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs) == before + 1
    assert len(list(tmp_path.glob("localizations.sqlite.damaged-*"))) == 1
    assert again.db.execute("SELECT count(*) FROM localizations").fetchone() == (0,)
    again.expect(_alert(20))
    assert again.db.execute("SELECT count(*) FROM localizations").fetchone() == (1,)


def test_a_resumed_localization_waits_for_its_pointings_attitude(telemetry, tmp_path):
    """After a restart the imager chunks can be read back before the pointing record is
    ingested again: the resumed request waits for the attitude instead of giving up."""
    from nrt.daemon.stream import AlertRecord
    from nrt.telemetry.formats import read_chunk

    directory, truth = telemetry
    burst = next(b for b in truth["grbs"] if b["in_fov"] and b["isgri_counts_expected"] > 5000)
    trigger = _trigger_of(burst)
    alert = Alert.initial_from_trigger(trigger, tense="test")
    outbox = Outbox(tmp_path / "outbox.sqlite", ["mqtt"])
    ingest = IngestLog(tmp_path / "ingest.sqlite")
    for path in sorted(directory.glob(f"isgri_{burst['pointing']}_*.fits")):
        ingest.record_chunk(read_chunk(path), path, "inbox")  # no pointing record yet
    pointing_file = next(directory.glob(f"pointing_{burst['pointing']}_*.fits"))
    revised: list[Alert] = []

    async def submit(a: Alert) -> bool:
        return outbox.add(a) is not None

    async def latest(alert_id: str) -> Alert | None:
        return outbox.latest(alert_id)

    async def revise(record: AlertRecord, make) -> Alert:
        revised.append(make(record.alert))
        return revised[-1]

    async def first_life() -> None:
        stage = LocalizationStage(revise, state=tmp_path)
        assert await stage.guard(submit)(alert)
        stage.close()

    async def second_life() -> tuple[int, tuple[str, str] | None, tuple[str, str] | None]:
        stage = LocalizationStage(revise, state=tmp_path)
        resumed = await stage.resume(ingest, {}, latest)
        await asyncio.sleep(0.5)
        waiting = await stage._db(stage.store.state, alert.id)
        stage.add(read_chunk(pointing_file))  # the pointing record comes in
        await stage.drain()
        done = await stage._db(stage.store.state, alert.id)
        stage.close()
        return resumed, waiting, done

    asyncio.run(first_life())
    resumed, waiting, done = asyncio.run(second_life())
    assert resumed == 1
    assert waiting[0] == "pending", waiting
    assert done == ("resolved", "update record 2"), done
    assert len(revised) == 1 and revised[0].localization is not None
    outbox.close()
    ingest.close()


def _localized(directory, burst, tmp_path, restart: bool) -> list[Alert]:
    """The burst's localization with every chunk live, or with the pointing record and the
    imager data up to 2 s before the peak ingested by an earlier life (``restart``)."""
    from nrt.daemon.stream import AlertRecord
    from nrt.telemetry.formats import read_chunk

    pointing = burst["pointing"]
    trigger = _trigger_of(burst)
    alert = Alert.initial_from_trigger(trigger, tense="test")
    records = [read_chunk(p) for p in directory.glob(f"pointing_{pointing}_*.fits")]
    isgri = [read_chunk(p) for p in sorted(directory.glob(f"isgri_{pointing}_*.fits"))]
    split = burst["peak"] - 2.0 if restart else -1.0
    ingest = IngestLog(tmp_path / f"ingest-{pointing}-{restart}.sqlite")
    for chunk in records + [c for c in isgri if c.tstop <= split]:  # the earlier life
        ingest.record_chunk(chunk, directory / chunk.name, "inbox")
    revised: list[Alert] = []

    async def latest(alert_id: str) -> Alert | None:
        return None

    async def revise(record: AlertRecord, make) -> Alert:
        revised.append(make(record.alert))
        return revised[-1]

    async def life() -> None:
        stage = LocalizationStage(revise)
        await stage.resume(ingest, {}, latest)
        for chunk in [] if restart else records:
            stage.add(chunk)
        asked = False
        for chunk in (c for c in isgri if c.tstop > split):
            if not asked and chunk.tstop > burst["peak"]:  # the trigger, as the stream fires
                now = time.monotonic()
                stage.request(AlertRecord(alert, trigger, now, now))
                asked = True
            ingest.record_chunk(chunk, directory / chunk.name, "inbox")  # as the consumer
            stage.add(chunk)
            await asyncio.sleep(0)
        await stage.drain()
        stage.close()

    asyncio.run(life())
    ingest.close()
    return revised


def test_a_burst_soon_after_a_restart_reads_back_what_the_earlier_life_ingested(
    telemetry, tmp_path
):
    """The pointing record and the burst's background came in before a restart, the
    burst's own imager data after it. The live request reads the rest back from the
    ingest log and is localized as without the restart (it was resolved "no imager data
    or attitude": the outcome depended on when the daemon had been restarted)."""
    directory, truth = telemetry
    candidates = [b for b in truth["grbs"] if b["in_fov"] and b["isgri_counts_expected"] > 5000]
    for burst in candidates:
        reference = _localized(directory, burst, tmp_path, restart=False)
        if reference and reference[0].localization is not None:
            break
    else:
        raise AssertionError("no simulated burst is localized even without a restart")
    after = _localized(directory, burst, tmp_path, restart=True)
    assert len(after) == 1 and after[0].localization == reference[0].localization
