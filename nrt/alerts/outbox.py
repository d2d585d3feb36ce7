"""The SQLite outbox: every alert revision is committed here before anything is sent.

One row per (id, record_number) holds the rendered JSON and VOEvent bytes, so a
re-send after a crash is byte-identical. One delivery row per (sink, alert)
says whether that sink has it; each sink works through its own pending rows in
commit order, so a stuck sink never holds up another. WAL mode lets
`nrt alerts list` read while the daemon writes; ``synchronous=FULL`` makes a
commit survive a power cut, not just a crash (it costs about 0.3 ms).

Retention (``Outbox.prune``): an alert every sink has delivered, whose newest
revision was committed and delivered longer ago than ``[alerts] retain``, leaves the outbox; its id stays in
the small ``pruned`` table (one row of about 100 bytes per alert, not per
revision), and a revision of a pruned id is never committed again. Ids are
derived from the instrument and trigger time, so that is what keeps an old
burst seen again (telemetry delivered again after the ingest log forgot it, a
restarted stream) from being published a second time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nrt import metrics
from nrt.alerts.model import Alert, AlertFormatError
from nrt.alerts.voevent import to_voevent
from nrt.paths import state_dir

OUTBOX_NAME = "alerts-outbox.sqlite"

log = logging.getLogger("nrt.alerts")

ALERT_COLUMNS = (
    "seq, id, record_number, instrument, alert_type, alert_tense, trigger_time, committed,"
    " json, voevent"
)
DELIVERY_COLUMNS = "sink, seq, state, attempts, last_error, updated"

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    record_number INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    alert_tense TEXT NOT NULL,
    trigger_time TEXT NOT NULL,
    committed REAL NOT NULL,
    json TEXT NOT NULL,
    voevent BLOB NOT NULL,
    UNIQUE (id, record_number)
);
CREATE TABLE IF NOT EXISTS deliveries (
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES alerts (seq),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated REAL,
    PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (sink, state, seq);
CREATE TABLE IF NOT EXISTS pruned (
    id TEXT PRIMARY KEY,
    record_number INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    trigger_time TEXT NOT NULL,
    committed REAL NOT NULL,
    pruned REAL NOT NULL
) WITHOUT ROWID;
"""
PRUNED_COLUMNS = "id, record_number, instrument, trigger_time, committed, pruned"


def default_path(configured_state_dir: str | Path | None = None) -> Path:
    """The outbox under the state directory (DESIGN.md section 4)."""
    return state_dir(configured_state_dir) / OUTBOX_NAME


@dataclass(frozen=True)
class OutboxRow:
    """One alert revision as committed: what every sink delivers."""

    seq: int
    id: str
    record_number: int
    instrument: str
    alert_type: str
    committed: float
    json: str
    voevent: bytes
    attempts: int = 0

    def alert(self) -> Alert:
        return Alert.from_json(json.loads(self.json), source=f"outbox row {self.seq}")


class Outbox:
    """Durable queue of alert revisions, one delivery cursor per sink."""

    def __init__(
        self,
        path: str | Path | None = None,
        sinks: Sequence[str] = ("mqtt",),
        *,
        synchronous: str = "FULL",
        author_ivorn: str | None = None,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.sinks = tuple(sinks)
        self.author_ivorn = author_ivorn
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"outbox synchronous={synchronous!r}: use FULL, NORMAL or EXTRA")
        self.synchronous = synchronous.upper()
        try:
            if readonly:  # `nrt alerts list` beside a running daemon: never write
                uri = f"file:{self.path}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
                self.db.execute("SELECT count(*) FROM alerts").fetchone()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                problem = damage(self.path)
                if problem is not None:
                    repair(self.path, problem)
            # One connection, used by the publisher from its single outbox thread.
            self.db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise AlertFormatError(
                f"alert outbox {self.path} cannot be opened: {exc}; "
                "move the file aside (undelivered alerts in it would be lost) and restart"
            ) from exc

    # -- writing --------------------------------------------------------------------------

    def add(self, alert: Alert) -> int | None:
        """Commit `alert` for every sink; None if this (id, record_number) is already in.

        Resubmitting the same revision (a restart rediscovering a trigger) is a no-op,
        which is what keeps a restarted daemon from publishing it twice. So is any
        revision of an alert pruned after delivery (see ``prune``).
        """
        payload = json.dumps(alert.to_json(), separators=(",", ":"))
        voevent = to_voevent(alert, author_ivorn=self.author_ivorn)
        now = time.time()
        with self._transaction():
            gone = self.db.execute(
                "SELECT record_number FROM pruned WHERE id=?", (alert.id,)
            ).fetchone()
            if gone is not None:
                log.info(
                    "alert %s was issued (%d records) and pruned from the outbox after "
                    "delivery; record %d is not committed again",
                    alert.id,
                    gone[0],
                    alert.record_number,
                )
                return None
            cur = self.db.execute(
                "INSERT OR IGNORE INTO alerts (id, record_number, instrument, alert_type,"
                " alert_tense, trigger_time, committed, json, voevent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.record_number,
                    alert.instrument,
                    alert.alert_type,
                    alert.alert_tense,
                    alert.trigger_time,
                    now,
                    payload,
                    voevent,
                ),
            )
            if cur.rowcount == 0:
                return None
            seq = cur.lastrowid
            self.db.executemany(
                "INSERT INTO deliveries (sink, seq, updated) VALUES (?, ?, ?)",
                [(sink, seq, now) for sink in self.sinks],
            )
        return seq

    def mark_sent(self, sink: str, seqs: Sequence[int]) -> None:
        """Record delivery (for MQTT: after the broker's PUBACK).

        Without an fsync of its own: a power cut can only forget a "sent" mark,
        which means a duplicate later (subscribers drop it), never a lost alert;
        the next `add` fsyncs the log with this in it anyway.
        """
        now = time.time()
        with self._transaction(synchronous="NORMAL"):
            self.db.executemany(
                "UPDATE deliveries SET state='sent', attempts=attempts+1, last_error=NULL,"
                " updated=? WHERE sink=? AND seq=?",
                [(now, sink, seq) for seq in seqs],
            )

    def record_failure(self, sink: str, seq: int, error: str, *, give_up: bool = False) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE deliveries SET attempts=attempts+1, last_error=?, updated=?,"
                " state=CASE WHEN ? THEN 'failed' ELSE state END WHERE sink=? AND seq=?",
                (error, time.time(), give_up, sink, seq),
            )

    def prune(self, max_age: float, now: float | None = None) -> int:
        """Delete alerts every sink delivered, committed and delivered more than `max_age`
        seconds ago (their last revision and its last delivery); the number of revisions
        deleted.

        An alert goes as a whole (all its revisions) or not at all: one revision some
        sink has not delivered (pending, or failed for good) keeps every revision of it,
        so ``latest`` and ``nrt alerts list`` never see half an alert. The pruned id is
        kept in ``pruned`` with its last record number: ``add`` refuses any revision of
        it, so an old burst found again is not published again (its id would be the
        same; its records would repeat or contradict what subscribers had).
        """
        now = time.time() if now is None else now
        cutoff = now - max_age
        with self._transaction(synchronous="NORMAL"):
            gone = self.db.execute(
                "SELECT a.id, max(a.record_number), a.instrument, a.trigger_time,"
                " max(a.committed) FROM alerts a LEFT JOIN deliveries d USING (seq)"
                " WHERE a.id NOT IN (SELECT a2.id FROM alerts a2 JOIN deliveries d2"
                " USING (seq) WHERE d2.state != 'sent')"
                " GROUP BY a.id HAVING max(max(a.committed), coalesce(max(d.updated), 0)) < ?",
                (cutoff,),
            ).fetchall()
            if not gone:
                return 0
            self.db.executemany(
                f"INSERT OR REPLACE INTO pruned ({PRUNED_COLUMNS}) VALUES ({_marks(6)})",
                [(*row, now) for row in gone],
            )
            ids = [(row[0],) for row in gone]
            self.db.executemany(
                "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM alerts WHERE id=?)", ids
            )
            deleted = sum(
                self.db.execute("DELETE FROM alerts WHERE id=?", key).rowcount for key in ids
            )
        log.info(
            "alert outbox: pruned %d delivered alerts (%d revisions) older than %.0f days",
            len(gone),
            deleted,
            max_age / 86400,
        )
        return deleted

    # -- reading ----------------------------------------------------------------------------

    def pending(self, sink: str, limit: int = 100) -> list[OutboxRow]:
        """Undelivered revisions for `sink`, oldest commit first."""
        rows = self.db.execute(
            "SELECT a.seq, a.id, a.record_number, a.instrument, a.alert_type, a.committed,"
            " a.json, a.voevent, d.attempts FROM deliveries d JOIN alerts a USING (seq)"
            " WHERE d.sink=? AND d.state='pending' ORDER BY d.seq LIMIT ?",
            (sink, limit),
        ).fetchall()
        return [OutboxRow(*row) for row in rows]

    def count_pending(self, sink: str | None = None) -> int:
        sinks = (sink,) if sink else self.sinks
        marks = ",".join("?" * len(sinks))
        (n,) = self.db.execute(
            f"SELECT count(*) FROM deliveries WHERE state='pending' AND sink IN ({marks})",
            sinks,
        ).fetchone()
        return n

    def latest(self, alert_id: str) -> Alert | None:
        """The newest committed revision of an alert, to derive the next one after a restart."""
        row = self.db.execute(
            "SELECT json FROM alerts WHERE id=? ORDER BY record_number DESC LIMIT 1", (alert_id,)
        ).fetchone()
        return Alert.from_json(json.loads(row[0]), source=f"outbox {alert_id}") if row else None

    def history(self) -> Iterator[tuple[OutboxRow, dict[str, tuple[str, int, str | None]]]]:
        """Every revision in commit order with its per-sink (state, attempts, last_error)."""
        deliveries: dict[int, dict[str, tuple[str, int, str | None]]] = {}
        for sink, seq, state, attempts, error in self.db.execute(
            "SELECT sink, seq, state, attempts, last_error FROM deliveries"
        ):
            deliveries.setdefault(seq, {})[sink] = (state, attempts, error)
        for row in self.db.execute(
            "SELECT seq, id, record_number, instrument, alert_type, committed, json, voevent"
            " FROM alerts ORDER BY seq"
        ):
            yield OutboxRow(*row), deliveries.get(row[0], {})

    def count_pruned(self) -> int:
        """How many alerts were pruned after delivery (their ids are kept)."""
        try:
            (n,) = self.db.execute("SELECT count(*) FROM pruned").fetchone()
        except sqlite3.OperationalError:  # an outbox from before retention, opened read-only
            return 0
        return n

    def close(self) -> None:
        self.db.close()

    def _transaction(self, synchronous: str | None = None):
        return _Transaction(self.db, synchronous or self.synchronous)


class OutboxDamaged(AlertFormatError):
    """The outbox file is damaged and could not be repaired without losing undelivered alerts."""


def damage(path: Path) -> str | None:
    """What SQLite finds wrong with the outbox file (``PRAGMA quick_check``), or None."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            found = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if found == ["ok"] else "; ".join(found[:3])


def repair(path: Path, problem: str) -> None:
    """Copy what a damaged outbox still holds into a fresh one, or refuse.

    The policy: the damaged file is set aside (``<name>.damaged-<time>``, never
    deleted) and replaced by a fresh outbox holding every revision that could be
    read back, with its delivery state. That happens only when no undelivered
    alert is lost by it: if the rows cannot be read, or a revision some sink has
    not delivered is unreadable, nrt refuses to start (OutboxDamaged) and says how
    to recover the file by hand.
    """
    try:
        alerts, deliveries, pruned = _salvage(path)
    except sqlite3.DatabaseError as exc:
        raise OutboxDamaged(
            f"alert outbox {path} is damaged ({problem}) and its rows cannot be read back "
            f"({exc}); it may hold undelivered alerts, so nrt does not start over it. "
            f"Recover what it holds: `sqlite3 {path} .recover > {path}.sql`, "
            f"`sqlite3 {path}.recovered < {path}.sql`, check it with "
            f"`nrt alerts list --pending --outbox {path}.recovered` and move it into place; "
            f"or, to accept losing what it holds, `mv {path} {path}.lost`; then start nrt again"
        ) from None
    pending = {seq for _sink, seq, state, *_ in deliveries if state == "pending"}
    readable = set()
    for row in alerts:
        try:
            json.loads(row[8])
            readable.add(row[0])
        except (ValueError, TypeError, UnicodeDecodeError):
            continue
    lost = pending - readable
    if lost:
        raise OutboxDamaged(
            f"alert outbox {path} is damaged ({problem}): {len(lost)} undelivered alert "
            f"revision(s) (seq {sorted(lost)[:5]}) cannot be read back; nrt does not start "
            f"over it. Recover it with `sqlite3 {path} .recover`, or move it aside to accept "
            "the loss, then start nrt again"
        )
    kept = [row for row in alerts if row[0] in readable]
    staging = path.with_name(f"{path.name}.repairing")
    staging.unlink(missing_ok=True)
    fresh = sqlite3.connect(staging)
    try:
        fresh.executescript(SCHEMA)
        fresh.executemany(f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ({_marks(10)})", kept)
        fresh.executemany(
            f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ({_marks(6)})",
            [d for d in deliveries if d[1] in readable],
        )
        fresh.executemany(f"INSERT INTO pruned ({PRUNED_COLUMNS}) VALUES ({_marks(6)})", pruned)
        fresh.commit()
    finally:
        fresh.close()
    # Only a complete copy replaces the damaged file, which is kept beside it.
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            side.rename(Path(f"{aside}{suffix}"))
    staging.rename(path)
    metrics.STATE_REPAIRS.labels("outbox", "salvaged").inc()
    log.error(
        "alert outbox %s was damaged (%s): moved to %s; %d revisions (%d undelivered) "
        "copied into a fresh outbox, %d unreadable ones dropped (all delivered)",
        path,
        problem,
        aside,
        len(kept),
        len(pending),
        len(alerts) - len(kept),
    )


def _salvage(path: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Every row of the alerts and deliveries, read by full scans (raises if a page cannot
    be read), and the pruned ids that can be read (none if that table is lost: they only
    guard alerts long delivered against being issued again)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        alerts = db.execute(f"SELECT {ALERT_COLUMNS} FROM alerts NOT INDEXED").fetchall()
        deliveries = db.execute(f"SELECT {DELIVERY_COLUMNS} FROM deliveries").fetchall()
        try:
            pruned = db.execute(f"SELECT {PRUNED_COLUMNS} FROM pruned").fetchall()
        except sqlite3.DatabaseError as exc:
            if "no such table" not in str(exc):
                log.error("alert outbox %s: the pruned alert ids cannot be read (%s)", path, exc)
            pruned = []
    finally:
        db.close()
    return alerts, deliveries, pruned


def _marks(n: int) -> str:
    return ",".join("?" * n)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection,
    with the given fsync policy for this commit."""

    def __init__(self, db: sqlite3.Connection, synchronous: str) -> None:
        self.db = db
        self.synchronous = synchronous

    def __enter__(self) -> None:
        self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
