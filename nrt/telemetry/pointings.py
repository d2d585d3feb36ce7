"""The pointing tracker: which pointings have all their telemetry (DESIGN.md sections 3 and 9).

Chunks are grouped by pointing as they arrive, in any order. A pointing is complete
when

- its ``pointing`` record is closed (a row for it with ``TSTOP > TSTART``; a row with
  ``TSTOP <= TSTART`` announces a pointing still in progress), and, for each required
  kind, the chunks' ``TSTART..TSTOP`` intervals cover the pointing's ``TSTART..TSTOP``
  with no gap longer than ``gap_tolerance`` inside it, and reach its end (within
  ``END_TOLERANCE``: a pointing's last chunks are often shorter than the gap tolerance,
  and announcing before them would redo the quick-look once per kind) ("covered"); or
- ``grace`` seconds passed since anything last arrived for it ("grace"; the gaps are
  reported with it).

Duplicates (same content) change nothing. A chunk that arrives after its pointing was
announced (late, or a corrected file under the same name, which replaces the old one)
changes the pointing's file set, so it is announced again by the same rules, with
new root elements whose signatures differ.

Restart: nothing here needs its own state file. The ``IngestLog`` holds every handled
chunk (kind, pointing, times, where its bytes are, when it arrived) and the file-set
digest each pointing was last announced with; ``restore()`` rebuilds the groups from it
and returns the pointings that became complete (or whose grace expired) while the
daemon was down, without repeating those already announced with the same files.
Together with the inbox rescan and the MQTT persistent session, this resumes exactly
what was incomplete.

Threads: the tracker is plain synchronous code over an ``IngestLog``. The daemon
drives it only through the log's ``AsyncIngestLog.call``, so its reads and its
``announce`` writes run on the log's thread, in order with the chunks' commits, and
its memory is touched by that one thread.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nrt.element import Element
from nrt.telemetry.formats import Chunk, read_chunk
from nrt.telemetry.ingest import ChunkRecord, IngestLog

DATA_KINDS: tuple[str, ...] = ("acs", "isgri", "hk")
#: For a pointing handed on with its record still open, the data reach (``data_stop``)
#: follows each kind's chunks from the pointing's start across gaps up to this (s); a
#: chunk beyond a longer gap (a clock jump, a stray file) does not stretch the span.
OPEN_GAP = 600.0


def file_set_digest(hashes: Iterable[str]) -> str:
    """One hash for a set of files: sha256 of their sorted content hashes."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def uncovered(
    start: float, stop: float, intervals: Iterable[tuple[float, float]], tolerance: float
) -> list[tuple[float, float]]:
    """Parts of ``start..stop`` not covered by ``intervals``, ignoring gaps <= tolerance."""
    gaps = []
    reached = start
    for a, b in sorted(intervals):
        if a > reached + tolerance:
            gaps.append((reached, min(a, stop)))
        reached = max(reached, b)
        if reached >= stop:
            break
    if reached < stop - tolerance:
        gaps.append((reached, stop))
    return [(a, b) for a, b in gaps if a < stop]


@dataclass
class PointingReady:
    """A pointing whose inputs are complete (or whose grace time ran out)."""

    pointing: str
    reason: str  # "covered", "grace", or "flushed" (see PointingTracker.flush)
    digest: str
    tstart: float | None  # seconds since MJD 51544 TT; None without a closed record
    tstop: float | None
    roots: dict[str, TelemetryFiles]
    gaps: dict[str, list[tuple[float, float]]]
    update: bool  # announced before with other files
    #: Without a closed record: where the data reach from the opening record's start
    #: (seconds since MJD 51544 TT, the end of the last chunk within ``OPEN_GAP`` of the
    #: one before); the quick-look ends the pointing there, provisionally.
    data_stop: float | None = None


#: Seconds by which a kind's data may stop short of the pointing record's end and still
#: cover it (float rounding of times only; data that stop earlier wait for ``grace``).
END_TOLERANCE = 1e-3


class _Coverage:
    """How far one kind's chunks reach, without gaps, from the pointing's start.

    Intervals beyond the reach wait in a heap until the gap before them is filled,
    so each chunk costs O(log n) however the chunks are ordered.
    """

    def __init__(self, start: float, tolerance: float) -> None:
        self.reach = start
        self.tolerance = tolerance
        self._ahead: list[tuple[float, float]] = []

    def add(self, start: float, stop: float) -> None:
        heapq.heappush(self._ahead, (start, stop))
        while self._ahead and self._ahead[0][0] <= self.reach + self.tolerance:
            self.reach = max(self.reach, heapq.heappop(self._ahead)[1])


@dataclass
class _Pointing:
    pointing: str
    files: dict[str, ChunkRecord] = field(default_factory=dict)  # by file name
    span: tuple[float, float] | None = None
    span_received: float = -1.0
    last_arrival: float = 0.0
    announced: str | None = None  # digest of the file set last announced
    changed: bool = True  # the file set may differ from the one announced
    coverage: dict[str, _Coverage] | None = None  # built once the span is closed

    @property
    def digest(self) -> str:
        return file_set_digest(r.sha256 for r in self.files.values())

    @property
    def closed(self) -> bool:
        return self.span is not None and self.span[1] > self.span[0]

    def covered(self, kinds: tuple[str, ...], tolerance: float) -> bool:
        if not self.closed:
            return False
        assert self.span is not None
        if self.coverage is None:
            self.coverage = {kind: _Coverage(self.span[0], tolerance) for kind in kinds}
            for record in self.files.values():
                if record.kind in self.coverage:
                    self.coverage[record.kind].add(record.tstart, record.tstop)
        return all(c.reach >= self.span[1] - END_TOLERANCE for c in self.coverage.values())


class PointingTracker:
    """Groups chunk records by pointing and says when each pointing is ready.

    Each chunk costs O(log n) (coverage is followed incrementally); the file-set
    digest is computed only when a pointing is announced.
    """

    def __init__(
        self,
        log: IngestLog,
        *,
        required_kinds: Iterable[str] = DATA_KINDS,
        grace: float = 900.0,
        gap_tolerance: float = 1.0,
        retain: float = 2 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.required_kinds = tuple(required_kinds)
        self.grace = grace
        self.gap_tolerance = gap_tolerance
        self.retain = retain
        self.clock = clock
        self._pointings: dict[str, _Pointing] = {}
        self._hashes: set[str] = set()

    # ------------------------------------------------------------ input

    def restore(self) -> list[PointingReady]:
        """Rebuild from the ingest log; return what is ready but was not announced so."""
        for record in self.log.records():
            self._add(record)
        announced = self.log.announced()
        for state in self._pointings.values():
            self._mark_announced(state, announced.get(state.pointing))
        return self.poll()

    def add(self, item: Chunk | ChunkRecord) -> list[PointingReady]:
        """Take one chunk (as it comes off a source's queue); return pointings now ready."""
        record = item if isinstance(item, ChunkRecord) else self.log.record(item.sha256)
        if record is None:
            raise LookupError(
                f"chunk {item.name} ({item.sha256[:12]}) is not in the ingest log; "
                "chunks must come from a source (InboxSource, MqttSource)"
            )
        if record.pointing not in self._pointings:  # new, or forgotten after `retain`
            self._reload(record.pointing)
        touched = self._add(record) or [record.pointing]
        return [ready for p in touched if (ready := self._check(self._pointings[p]))]

    def _reload(self, pointing: str) -> None:
        for record in self.log.records(pointing):
            self._add(record)
        if pointing in self._pointings:
            digest = self.log.announced(pointing).get(pointing)
            self._mark_announced(self._pointings[pointing], digest)

    def _mark_announced(self, state: _Pointing, digest: str | None) -> None:
        state.announced = digest
        state.changed = digest is None or digest != state.digest

    def _add(self, record: ChunkRecord) -> list[str]:
        if record.sha256 in self._hashes:
            return []
        self._hashes.add(record.sha256)
        if self._superseded(record):
            return []
        state = self._state(record.pointing)
        old = state.files.get(record.name)
        if old is not None:  # a corrected file under the same name replaces the old one
            self._hashes.discard(old.sha256)
            state.coverage = None
        state.files[record.name] = record
        state.changed = True
        state.last_arrival = max(state.last_arrival, record.received)
        if state.coverage is not None and record.kind in state.coverage:
            state.coverage[record.kind].add(record.tstart, record.tstop)
        touched = {record.pointing}
        for pid, start, stop in record.spans:
            target = self._state(pid)
            if record.received >= target.span_received and target.span != (start, stop):
                target.span, target.coverage = (start, stop), None
            target.span_received = max(target.span_received, record.received)
            touched.add(pid)
        return sorted(touched)

    def _superseded(self, record: ChunkRecord) -> bool:
        """A pointing's opening record (still open: TSTOP = TSTART) arriving after its
        closing one: it says nothing the closing record does not, so it neither reopens
        the pointing nor changes its file set (no second quick-look for it). Telemetry
        can come out of order (a producer's retransmission, an MQTT redelivery)."""
        if record.kind != "pointing" or not record.spans:
            return False
        for pid, start, stop in record.spans:
            target = self._pointings.get(pid)
            if stop > start or target is None or not target.closed:
                return False
        return True

    def _state(self, pointing: str) -> _Pointing:
        if pointing not in self._pointings:
            self._pointings[pointing] = _Pointing(pointing)
        return self._pointings[pointing]

    # ------------------------------------------------------------ decisions

    def poll(self) -> list[PointingReady]:
        """Pointings that are ready now (call on a timer, see ``next_deadline``).

        Also forgets pointings announced and quiet for ``retain`` seconds, so a daemon
        running for months holds only recent pointings; a chunk arriving for one later
        brings it back from the ingest log.
        """
        ready = [ready for p in list(self._pointings.values()) if (ready := self._check(p))]
        now = self.clock()
        for state in list(self._pointings.values()):
            if not state.changed and now - state.last_arrival > self.retain:
                del self._pointings[state.pointing]
                self._hashes.difference_update(r.sha256 for r in state.files.values())
        return ready

    def flush(self) -> list[PointingReady]:
        """Announce every pointing not yet announced with its current files, as it is
        (the end of a replay, or a shutdown that wants everything handed on)."""
        ready = []
        for state in list(self._pointings.values()):
            if state.changed and state.files:
                reason = self._reason(state) or "flushed"
                found = self._announce(state, reason)
                if found:
                    ready.append(found)
        return ready

    def next_deadline(self) -> float | None:
        """Clock time at which a grace period next runs out, if any pointing waits."""
        waiting = [p.last_arrival + self.grace for p in self._pointings.values() if p.changed]
        return min(waiting, default=None)

    def gaps(self, pointing: str) -> dict[str, list[tuple[float, float]]]:
        """Per required kind, the parts of the pointing's closed span without data."""
        state = self._pointings[pointing]
        if not state.closed:
            return {}
        assert state.span is not None
        start, stop = state.span
        out = {}
        for kind in self.required_kinds:
            spans = [(r.tstart, r.tstop) for r in state.files.values() if r.kind == kind]
            found = uncovered(start, stop, spans, self.gap_tolerance)
            if found:
                out[kind] = found
        return out

    def states(self) -> dict[str, int]:
        """How many pointings are in each ``status`` (for the daemon's gauges)."""
        found: dict[str, int] = {}
        for pointing in self._pointings:
            state = self.status(pointing)
            found[state] = found.get(state, 0) + 1
        return found

    def status(self, pointing: str) -> str:
        """``open``, ``covered``, ``grace`` or ``announced`` (with the current files)."""
        state = self._pointings[pointing]
        if not state.changed:
            return "announced"
        return self._reason(state) or "open"

    def _reason(self, state: _Pointing) -> str | None:
        if not state.files:
            return None
        if state.covered(self.required_kinds, self.gap_tolerance):
            return "covered"
        if self.clock() - state.last_arrival >= self.grace:
            return "grace"
        return None

    def _check(self, state: _Pointing) -> PointingReady | None:
        if not state.changed:
            return None
        reason = self._reason(state)
        if reason is None:
            return None
        return self._announce(state, reason)

    def _announce(self, state: _Pointing, reason: str) -> PointingReady | None:
        digest = state.digest
        state.changed = False
        if digest == state.announced:  # e.g. a file replaced by its earlier content
            return None
        update = state.announced is not None
        state.announced = digest
        self.log.announce(state.pointing, digest, reason)
        span = state.span if state.closed else None
        return PointingReady(
            pointing=state.pointing,
            reason=reason,
            digest=digest,
            tstart=span[0] if span else None,
            tstop=span[1] if span else None,
            roots=self.roots(state.pointing),
            gaps=self.gaps(state.pointing),
            update=update,
            data_stop=self._data_stop(state),
        )

    def _data_stop(self, state: _Pointing) -> float | None:
        """For an open pointing (record not closed), how far its data reach: see
        ``PointingReady.data_stop``. None for a closed one or without any record."""
        if state.closed or state.span is None:
            return None
        start, reach = state.span[0], None
        for kind in self.required_kinds:
            coverage = _Coverage(start, OPEN_GAP)
            for record in state.files.values():
                if record.kind == kind:
                    coverage.add(record.tstart, record.tstop)
            if coverage.reach > start:
                reach = max(reach or start, coverage.reach)
        return reach

    def load(self, pointing: str, reason: str = "archive") -> PointingReady | None:
        """`pointing` as the ingest log holds it, announced or not (``nrt reprocess``):
        the same roots, span and ``data_stop`` the live daemon handed on. None if unknown."""
        self._reload(pointing)
        return self.ready(pointing, reason) if pointing in self._pointings else None

    def ready(self, pointing: str, reason: str) -> PointingReady:
        """`pointing` with its current files, to hand on again without announcing it anew
        (its quick-look was cut short by a crash)."""
        state = self._pointings[pointing]
        span = state.span if state.closed else None
        return PointingReady(
            pointing=pointing,
            reason=reason,
            digest=state.digest,
            tstart=span[0] if span else None,
            tstop=span[1] if span else None,
            roots=self.roots(pointing),
            gaps=self.gaps(pointing),
            update=state.announced is not None,
            data_stop=self._data_stop(state),
        )

    # ------------------------------------------------------------ root elements

    def pointings(self) -> list[str]:
        return sorted(self._pointings)

    def roots(self, pointing: str) -> dict[str, TelemetryFiles]:
        """One root element per kind present, over the pointing's current files."""
        by_kind: dict[str, list[ChunkRecord]] = {}
        for record in self._pointings[pointing].files.values():
            by_kind.setdefault(record.kind, []).append(record)
        return {kind: TelemetryFiles.of(pointing, kind, recs) for kind, recs in by_kind.items()}


class TelemetryFiles(Element):
    """Root element: one kind of telemetry for one pointing, named by its files' content.

    The signature depends on the sorted content hashes (``files``), so a late chunk
    changes it and a duplicate delivery does not; where the bytes are kept is private
    (``_paths``) and does not enter it. ``main`` reads the files back, checks that
    each still has the content it was ingested with, and joins them in time order.
    """

    version = "1"
    cached = False  # the telemetry itself is already on disk
    pointing = ""
    kind = ""
    files: tuple[str, ...] = ()

    @classmethod
    def of(cls, pointing: str, kind: str, records: Iterable[ChunkRecord]) -> TelemetryFiles:
        records = sorted(records, key=lambda r: r.sha256)
        element = cls(pointing=pointing, kind=kind, files=tuple(r.sha256 for r in records))
        object.__setattr__(element, "_paths", {r.sha256: str(r.path) for r in records})
        return element

    def main(self) -> None:
        paths: dict[str, str] = getattr(self, "_paths", {})
        missing = [sha[:12] for sha in self.files if sha not in paths]
        if missing:
            raise LookupError(
                f"{self!r}: no stored path for files {missing}; build root elements with "
                "PointingTracker.roots() or TelemetryFiles.of()"
            )
        chunks = [_read_verified(Path(paths[sha]), sha) for sha in self.files]
        chunks.sort(key=lambda c: (c.tstart, c.sha256))
        mjdref = chunks[0].mjdref
        shifted = [(c, (c.mjdref - mjdref) * 86400.0) for c in chunks]  # all on one MJDREF
        names = [n for n in chunks[0].columns if all(n in c.columns for c in chunks)]
        self.columns = {n: np.concatenate([_column(c, n, s) for c, s in shifted]) for n in names}
        self.tstart = min(c.tstart + s for c, s in shifted)
        self.tstop = max(c.tstop + s for c, s in shifted)
        self.mjdref = mjdref
        self.instrument = chunks[0].instrument
        self.nfiles = len(chunks)


def _column(chunk: Chunk, name: str, shift: float) -> np.ndarray:
    return chunk.columns[name] + shift if name == "TIME" and shift else chunk.columns[name]


def _read_verified(path: Path, sha256: str) -> Chunk:
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise RuntimeError(
            f"{path}: content changed since it was ingested (sha256 {found[:12]}, "
            f"expected {sha256[:12]}); telemetry files must not be modified in place"
        )
    return read_chunk(data, None, sha256=sha256)


def describe(ready: PointingReady) -> dict[str, Any]:
    """A JSON-friendly summary (for logs and ``--json`` output)."""
    return {
        "pointing": ready.pointing,
        "reason": ready.reason,
        "update": ready.update,
        "tstart": ready.tstart,
        "tstop": ready.tstop,
        "files": {kind: len(root.files) for kind, root in ready.roots.items()},
        "gaps": ready.gaps,
        "data_stop": ready.data_stop,
        "signatures": {kind: root.signature for kind, root in ready.roots.items()},
    }
