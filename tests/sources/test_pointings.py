"""The pointing tracker: completeness, out-of-order and duplicate chunks, grace, restart."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from nrt.telemetry.formats import read_chunk
from nrt.telemetry.ingest import ChunkRecord, IngestLog
from nrt.telemetry.pointings import PointingTracker, TelemetryFiles, uncovered
from tests.sources import factory as f

T0, T1 = 1000.0, 1010.0  # the pointing's span (seconds since MJD 51544 TT)


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def deliver(log: IngestLog, directory: Path, filename: str, data: bytes) -> ChunkRecord:
    """What a source does: keep the file, parse it, record it."""
    path = directory / filename
    path.write_bytes(data)
    record = log.record_chunk(read_chunk(data, filename), path, "test")
    return record


def pointing_files(pointing: str = f.P1) -> dict[str, bytes]:
    """Two 5 s chunks of each data kind, and a closed pointing record."""
    files = {f.name("pointing", pointing, 0): f.pointing_record(pointing, T0, T1)}
    for kind, make in f.MAKERS.items():
        for seq, t0 in enumerate((T0, T0 + 5.0)):
            files[f.name(kind, pointing, seq)] = make(pointing=pointing, t0=t0)
    return files


@pytest.fixture
def setup(tmp_path: Path):
    log = IngestLog()
    clock = Clock()
    tracker = PointingTracker(log, grace=60.0, clock=clock)
    yield log, tracker, clock, tmp_path
    log.close()


def test_complete_exactly_when_the_last_piece_arrives_in_any_order(setup) -> None:
    log, tracker, _clock, d = setup
    files = list(pointing_files().items())
    random.Random(3).shuffle(files)
    ready = []
    for i, (name, data) in enumerate(files):
        ready += tracker.add(deliver(log, d, name, data))
        assert bool(ready) == (i == len(files) - 1), (i, name)
    (event,) = ready
    assert event.pointing == f.P1 and event.reason == "covered" and not event.update
    assert (event.tstart, event.tstop) == (T0, T1) and event.gaps == {}
    assert sorted(event.roots) == ["acs", "hk", "isgri", "pointing"]
    acs = event.roots["acs"].get()
    assert acs.nfiles == 2 and len(acs.columns["TIME"]) == 200
    assert np.all(np.diff(acs.columns["TIME"]) > 0)  # joined in time order
    assert (acs.tstart, acs.tstop) == (T0, T1)
    assert event.roots["pointing"].get().columns["POINTING"].tolist() == [f.P1]


def test_short_last_chunks_are_waited_for_and_the_pointing_announced_once(setup) -> None:
    """The last chunk of each kind is shorter than the gap tolerance (as at a pointing's
    end in the simulator and in real telemetry): coverage must reach the record's end,
    or the pointing would be announced before them and looked at again once per kind."""
    log, tracker, _clock, d = setup
    tracker.gap_tolerance = 2.0
    files = {f.name("pointing", f.P1, 0): f.pointing_record(f.P1, T0, T1)}
    for kind, make in f.MAKERS.items():
        for seq, (t0, seconds) in enumerate(((T0, 4.5), (T0 + 4.5, 4.5), (T0 + 9.0, 1.0))):
            files[f.name(kind, f.P1, seq)] = make(pointing=f.P1, t0=t0, seconds=seconds)
    last = [f.name(kind, f.P1, 2) for kind in f.MAKERS]
    assert len(last) == 3, sorted(files)
    ready = []
    for name in [n for n in files if n not in last] + last:
        ready += tracker.add(deliver(log, d, name, files[name]))
        assert bool(ready) == (name == last[-1]), name
    (event,) = ready
    assert event.reason == "covered" and event.roots["acs"].get().nfiles == 3


def test_an_open_pointing_waits_for_its_closing_record(setup) -> None:
    log, tracker, _clock, d = setup
    files = pointing_files()
    del files[f.name("pointing", f.P1, 0)]
    open_record = f.pointing_record(f.P1, T0, T0)  # TSTOP == TSTART: still in progress
    assert tracker.add(deliver(log, d, f.name("pointing", f.P1, 0), open_record)) == []
    for name, data in files.items():
        assert tracker.add(deliver(log, d, name, data)) == []
    assert tracker.status(f.P1) == "open"
    closing = f.pointing_record(f.P1, T0, T1)
    (event,) = tracker.add(deliver(log, d, f.name("pointing", f.P1, 1), closing))
    assert event.reason == "covered"


def test_duplicates_change_nothing_and_late_chunks_change_only_their_kind(setup) -> None:
    log, tracker, _clock, d = setup
    for name, data in pointing_files().items():
        ready = tracker.add(deliver(log, d, name, data))
    (first,) = ready
    before = {kind: root.signature for kind, root in first.roots.items()}
    again = log.record(first.roots["acs"].files[0])
    assert again is not None and tracker.add(again) == []  # a duplicate delivery
    assert {k: r.signature for k, r in tracker.roots(f.P1).items()} == before

    late = f.isgri(t0=T0 + 2.0, seconds=1.0, seed=7)  # e.g. a retransmitted stretch
    (update,) = tracker.add(deliver(log, d, f.name("isgri", f.P1, 9), late))
    assert update.update and update.reason == "covered" and update.digest != first.digest
    after = {kind: root.signature for kind, root in update.roots.items()}
    assert after["isgri"] != before["isgri"]
    assert {k: v for k, v in after.items() if k != "isgri"} == {
        k: v for k, v in before.items() if k != "isgri"
    }
    assert len(update.roots["isgri"].files) == 3


def test_grace_time_completes_a_pointing_with_a_gap(setup) -> None:
    log, tracker, clock, d = setup
    files = pointing_files()
    del files[f.name("hk", f.P1, 1)]  # hk for 1005..1010 never arrives
    for name, data in files.items():
        assert tracker.add(deliver(log, d, name, data)) == []
    assert tracker.poll() == []
    deadline = tracker.next_deadline()
    assert deadline is not None and deadline == pytest.approx(time.time() + 60.0, abs=5)
    clock.offset = 59.0
    assert tracker.poll() == []
    clock.offset = 61.0
    (event,) = tracker.poll()
    assert event.reason == "grace" and event.gaps == {"hk": [(T0 + 5.0, T1)]}
    assert tracker.poll() == []  # announced once
    assert tracker.next_deadline() is None


def test_grace_also_ends_a_pointing_whose_record_never_came(setup) -> None:
    log, tracker, clock, d = setup
    tracker.add(deliver(log, d, f.name("acs", f.P2, 0), f.acs(pointing=f.P2)))
    clock.offset = 61.0
    (event,) = tracker.poll()
    assert event.pointing == f.P2 and event.reason == "grace" and event.tstart is None


def test_restart_resumes_without_repeating(setup) -> None:
    log, tracker, clock, d = setup
    for name, data in pointing_files(f.P1).items():
        tracker.add(deliver(log, d, name, data))
    incomplete = pointing_files(f.P2)
    del incomplete[f.name("acs", f.P2, 1)]
    for name, data in incomplete.items():
        tracker.add(deliver(log, d, name, data))
    assert tracker.status(f.P1) == "announced" and tracker.status(f.P2) == "open"

    fresh = PointingTracker(log, grace=60.0, clock=clock)  # as after a restart
    assert fresh.restore() == []  # P1 was announced with these files; P2 still waits
    assert fresh.status(f.P1) == "announced"
    assert {k: r.signature for k, r in fresh.roots(f.P1).items()} == {
        k: r.signature for k, r in tracker.roots(f.P1).items()
    }
    later = PointingTracker(log, grace=60.0, clock=clock)
    clock.offset = 120.0  # the daemon was down longer than the grace time
    (event,) = later.restore()
    assert event.pointing == f.P2 and event.reason == "grace"
    assert event.gaps == {"acs": [(T0 + 5.0, T1)]}


def test_root_element_refuses_a_file_changed_after_ingest(setup) -> None:
    log, tracker, _clock, d = setup
    record = deliver(log, d, f.name("acs"), f.acs())
    tracker.add(record)
    root = tracker.roots(f.P1)["acs"]
    assert isinstance(root, TelemetryFiles) and root.files == (record.sha256,)
    record.path.write_bytes(f.acs(seed=5))
    with pytest.raises(RuntimeError, match="content changed since it was ingested"):
        root.get()


def test_uncovered_intervals() -> None:
    assert uncovered(0, 10, [(0, 5), (5, 10)], 0.1) == []
    assert uncovered(0, 10, [(5, 10), (0, 4.95)], 0.1) == []  # gap within tolerance
    assert uncovered(0, 10, [(0, 4), (6, 10)], 0.1) == [(4, 6)]
    assert uncovered(0, 10, [(2, 12)], 0.1) == [(0, 2)]
    assert uncovered(0, 10, [], 0.1) == [(0, 10)]
    assert uncovered(0, 10, [(0, 3), (1, 2)], 0.1) == [(3, 10)]


def test_old_pointings_are_forgotten_and_come_back_for_a_late_chunk(setup) -> None:
    log, _tracker, clock, d = setup
    tracker = PointingTracker(log, grace=60.0, retain=100.0, clock=clock)
    for name, data in pointing_files().items():
        ready = tracker.add(deliver(log, d, name, data))
    (first,) = ready
    clock.offset = 50.0
    assert tracker.poll() == [] and tracker.pointings() == [f.P1]
    clock.offset = 101.0
    assert tracker.poll() == [] and tracker.pointings() == []  # forgotten, not re-announced
    late = f.acs(t0=T0 + 1.0, seconds=1.0, seed=11)
    (update,) = tracker.add(deliver(log, d, f.name("acs", f.P1, 7), late))
    assert update.update and update.reason == "covered"
    assert len(update.roots["acs"].files) == 3 and len(update.roots["isgri"].files) == 2
    assert update.roots["isgri"].signature == first.roots["isgri"].signature


def test_flush_hands_on_every_pointing_as_it_is(setup) -> None:
    log, tracker, _clock, d = setup
    for name, data in pointing_files(f.P1).items():
        tracker.add(deliver(log, d, name, data))
    tracker.add(deliver(log, d, f.name("acs", f.P2, 0), f.acs(pointing=f.P2)))
    (event,) = tracker.flush()  # P1 was announced already
    assert event.pointing == f.P2 and event.reason == "flushed" and event.tstart is None
    assert tracker.flush() == [] and tracker.poll() == []


def test_an_opening_record_after_the_closing_one_changes_nothing(setup) -> None:
    """Out of order, the pointing's open record (TSTOP = TSTART) comes last: the pointing
    stays closed and announced once, and a restart reads the log back the same way."""
    log, tracker, _clock, d = setup
    ready = []
    for name, data in pointing_files().items():  # the closing record comes first
        ready += tracker.add(deliver(log, d, name, data))
    (event,) = ready
    opening = deliver(log, d, f.name("pointing", f.P1, 9), f.pointing_record(f.P1, T0, T0))
    assert tracker.add(opening) == []
    assert tracker.status(f.P1) == "announced"
    assert tracker.roots(f.P1)["pointing"].signature == event.roots["pointing"].signature
    again = PointingTracker(log, grace=60.0)
    assert again.restore() == [] and again.status(f.P1) == "announced"
