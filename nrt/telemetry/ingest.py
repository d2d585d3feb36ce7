"""What has been ingested, and where bad input goes (DESIGN.md section 5).

``IngestLog`` is the SQLite record (under the state directory) that makes every
telemetry file handled once per content hash, by every source and across restarts;
it also holds what the pointing tracker needs to resume (kind, pointing, times and
stored path of each chunk, and which pointings were already announced).

``Quarantine`` is the directory where input that cannot be used is moved, each file
with a ``<name>.reason`` JSON file beside it (original name, source, problem, fix,
time), so an operator sees what was wrong and the daemon goes on.

Names from outside (inbox entries, MQTT user properties) are never used as paths
without :func:`is_safe_name`; :func:`sanitize_name` gives a harmless stand-in.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nrt import metrics, statedb
from nrt.paths import state_dir
from nrt.telemetry.formats import MJDREF_IJD, Chunk, TelemetryError

if TYPE_CHECKING:
    from nrt.telemetry.ingestthread import AsyncIngestLog

logger = logging.getLogger(__name__)

#: A name that is safe as one path component: no separators, no leading dot, no odd bytes.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
#: Suffixes producers use while writing (the file is renamed to its final name afterwards).
TEMP_SUFFIXES = (".tmp", ".part", "~")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    pointing TEXT NOT NULL,
    tstart REAL NOT NULL,
    tstop REAL NOT NULL,
    mjdref REAL NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_pointing ON chunks (pointing);
CREATE TABLE IF NOT EXISTS pointing_spans (
    sha256 TEXT NOT NULL,
    pointing TEXT NOT NULL,
    tstart REAL NOT NULL,
    tstop REAL NOT NULL,
    PRIMARY KEY (sha256, pointing)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantined (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT,
    problem TEXT NOT NULL,
    fix TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS announced (
    pointing TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""


#: What tells one version of a file from another without reading it.
FileIdentity = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns


def file_identity(st: os.stat_result) -> FileIdentity:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_temp_name(name: str) -> bool:
    """Dotfiles and ``*.tmp``/``*.part``/``*~``: files a producer has not finished."""
    return name.startswith(".") or name.endswith(TEMP_SUFFIXES)


def is_safe_name(name: str) -> bool:
    """True if ``name`` can be used as a single path component without surprises."""
    return bool(SAFE_NAME.fullmatch(name)) and name not in (".", "..")


def sanitize_name(name: str) -> str:
    """A safe stand-in for an untrusted name (odd characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip("._-+")[:120]
    return cleaned or "unnamed"


def printable(name: str) -> str:
    """An untrusted name as text that can be stored and shown (undecodable bytes escaped)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def absolute_seconds(seconds: float, mjdref: float) -> float:
    """Seconds since MJDREF -> seconds since the INTEGRAL epoch (MJD 51544 TT)."""
    return (mjdref - MJDREF_IJD) * 86400.0 + seconds


@dataclass(frozen=True)
class ChunkRecord:
    """One ingested chunk as the pointing tracker needs it (times: seconds since MJD 51544)."""

    sha256: str
    name: str
    path: Path
    source: str
    kind: str
    pointing: str
    tstart: float
    tstop: float
    received: float
    #: for ``pointing`` chunks: pointing id -> (TSTART, TSTOP) of each row.
    spans: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Problem:
    """Why an input was refused: the two halves of a TelemetryError, or our own."""

    problem: str
    fix: str

    @classmethod
    def of(cls, exc: BaseException) -> Problem:
        if isinstance(exc, TelemetryError):
            return cls(f"{exc.field}: {exc.problem}", exc.fix)
        return cls(f"{type(exc).__name__}: {exc}", "check the file; this looks like a bug")


class IngestLog:
    """SQLite record of handled content hashes, seen files, quarantine and announcements.

    Every write commits at once (WAL), so a crash loses at most the file being
    handled, which the next rescan handles again. Used from one thread at a time: the
    daemon's sources and stages go through ``aio`` (``AsyncIngestLog``), which runs
    every call on the log's own thread, so the event loop never waits on SQLite.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else state_dir() / "ingest.sqlite"
        # Handed to the log's thread (``aio``): opened there by the daemon, or here.
        self._db = statedb.open_or_reset(
            self.path, _SCHEMA, "chunks", damaged=self._damaged, threads=True
        )
        self._claimed: set[str] = set()
        #: events by (source, outcome): outcome is handled, duplicate or quarantined.
        self.counts: Counter[tuple[str, str]] = Counter()
        #: called with (source, outcome) on each event, e.g. to feed a Prometheus counter.
        self.on_count: Callable[[str, str], None] | None = None

    def _damaged(self, exc: sqlite3.DatabaseError, aside: Path) -> None:
        # A damaged record must not stop the daemon: it is set aside and started afresh.
        # The inbox rescan then sees every file as new; content already handled is
        # handled again once (products come back from the cache by signature).
        logger.error("ingest record %s is damaged (%s); moved to %s", self.path, exc, aside)
        metrics.STATE_REPAIRS.labels("ingest", "reset").inc()

    @functools.cached_property
    def aio(self) -> AsyncIngestLog:
        """This log with async methods, every call run on one thread of its own."""
        from nrt.telemetry.ingestthread import AsyncIngestLog

        return AsyncIngestLog(self)

    def close(self) -> None:
        """Close the database (after the calls queued on ``aio``'s thread, if any)."""
        facade = self.__dict__.pop("aio", None)
        if facade is not None:
            facade.shutdown()
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One transaction, one commit. The connection is in autocommit mode, where
        ``with db:`` would commit each statement on its own (a chunk's row without
        its pointing spans, after a crash in between)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _count(self, source: str, outcome: str) -> None:
        self.counts[(source, outcome)] += 1
        if self.on_count is not None:
            self.on_count(source, outcome)

    # ------------------------------------------------------------ content hashes

    def has(self, sha256: str) -> bool:
        """True if a good chunk with this content was already handled by any source.

        Refused content is not remembered as handled: sent again, it is refused again
        (and counted again), so it never lingers unexplained in the inbox.
        """
        row = self._db.execute("SELECT 1 FROM chunks WHERE sha256 = ?", (sha256,)).fetchone()
        return row is not None

    def claim(self, sha256: str) -> bool:
        """Reserve a content hash for handling; False if it is handled or being handled."""
        if sha256 in self._claimed or self.has(sha256):
            return False
        self._claimed.add(sha256)
        return True

    def release(self, sha256: str) -> None:
        """Give a claim back (the handling was abandoned, e.g. the file changed)."""
        self._claimed.discard(sha256)

    def record_chunk(self, chunk: Chunk, path: Path, source: str) -> ChunkRecord:
        """Remember a good chunk (and where its bytes are kept) and count it."""
        record = ChunkRecord(
            sha256=chunk.sha256,
            name=Path(chunk.name).name,
            path=Path(path),
            source=source,
            kind=chunk.kind,
            pointing=chunk.pointing,
            tstart=absolute_seconds(chunk.tstart, chunk.mjdref),
            tstop=absolute_seconds(chunk.tstop, chunk.mjdref),
            received=time.time(),
            spans=_pointing_spans(chunk),
        )
        with self._write():
            self._db.execute(
                "INSERT OR IGNORE INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.sha256,
                    record.name,
                    str(record.path),
                    source,
                    record.kind,
                    record.pointing,
                    record.tstart,
                    record.tstop,
                    chunk.mjdref,
                    record.received,
                ),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO pointing_spans VALUES (?,?,?,?)",
                [(record.sha256, *span) for span in record.spans],
            )
        self._claimed.discard(chunk.sha256)
        self._count(source, "handled")
        return record

    def record(self, sha256: str) -> ChunkRecord | None:
        """The stored record of a handled chunk, or None."""
        rows = self._records("WHERE c.sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def records(self, pointing: str | None = None) -> list[ChunkRecord]:
        """All handled chunks (of one pointing), in the order they were received."""
        if pointing is None:
            return self._records("", ())
        return self._records("WHERE c.pointing = ?", (pointing,))

    def _records(self, where: str, args: tuple) -> list[ChunkRecord]:
        rows = self._db.execute(
            "SELECT c.sha256, c.name, c.path, c.source, c.kind, c.pointing, c.tstart, c.tstop, "
            f"c.received FROM chunks c {where} ORDER BY c.received, c.rowid",
            args,
        ).fetchall()
        spans: dict[str, list[tuple[str, float, float]]] = {}
        if any(row[4] == "pointing" for row in rows):
            for sha, pid, start, stop in self._db.execute(
                "SELECT sha256, pointing, tstart, tstop FROM pointing_spans ORDER BY rowid"
            ):
                spans.setdefault(sha, []).append((pid, start, stop))
        return [
            ChunkRecord(
                sha256=row[0],
                name=row[1],
                path=Path(row[2]),
                source=row[3],
                kind=row[4],
                pointing=row[5],
                tstart=row[6],
                tstop=row[7],
                received=row[8],
                spans=tuple(spans.get(row[0], ())),
            )
            for row in rows
        ]

    def count_duplicate(self, source: str) -> None:
        self._count(source, "duplicate")

    def prune(self, retain: float) -> int:
        """Forget announced pointings' chunks whose data ended ``retain`` seconds before the
        newest handled data; returns how many chunks were forgotten.

        Keeps the record (and what ``records()`` loads at every start) to a window of
        data instead of the whole mission. The limit: content handled longer ago than
        that is no longer known, so a file re-delivered after it is handled again, and
        a late chunk of a forgotten pointing announces that pointing anew with what
        arrived since. Chunks of pointings never announced are kept.
        """
        (newest,) = self._db.execute("SELECT max(tstop) FROM chunks").fetchone()
        if newest is None:
            return 0
        cutoff = newest - retain
        with self._write():
            stale = "tstop < ? AND pointing IN (SELECT pointing FROM announced)"
            self._db.execute(
                f"DELETE FROM pointing_spans WHERE sha256 IN (SELECT sha256 FROM chunks "
                f"WHERE {stale})",
                (cutoff,),
            )
            gone = self._db.execute(f"DELETE FROM chunks WHERE {stale}", (cutoff,)).rowcount
            if gone:
                self._db.execute(
                    "DELETE FROM announced WHERE pointing NOT IN (SELECT pointing FROM chunks)"
                )
        return gone

    # ------------------------------------------------------------ inbox files

    def files_in(self, directory: Path) -> dict[str, FileIdentity]:
        """Handled files directly in ``directory``: path -> (inode, size, mtime_ns, ctime_ns)."""
        prefix = os.path.join(str(directory), "")
        rows = self._db.execute(
            "SELECT path, ino, size, mtime_ns, ctime_ns FROM files WHERE substr(path, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]

    def remember_file(self, path: Path, identity: FileIdentity, sha256: str) -> None:
        """A file handled (or found to be a duplicate): a rescan need not read it again."""
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?)",
                (str(path), *identity, sha256),
            )

    def forget_files(self, paths: Iterable[str]) -> None:
        """Drop records of files that left the inbox (archived, deleted)."""
        with self._write():
            self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    # ------------------------------------------------------------ quarantine

    def record_quarantine(
        self, name: str, path: Path, source: str, sha256: str | None, problem: Problem
    ) -> None:
        now = time.time()
        with self._write():
            self._db.execute(
                "INSERT INTO quarantined (name, path, source, sha256, problem, fix, at) "
                "VALUES (?,?,?,?,?,?,?)",
                (printable(name), str(path), source, sha256, problem.problem, problem.fix, now),
            )
        if sha256:
            self._claimed.discard(sha256)
        self._count(source, "quarantined")

    def quarantined(self) -> list[dict]:
        """Every quarantined input, oldest first."""
        cursor = self._db.execute(
            "SELECT name, path, source, sha256, problem, fix, at FROM quarantined ORDER BY id"
        )
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor]

    # ------------------------------------------------------------ pointings

    def announce(self, pointing: str, digest: str, reason: str) -> None:
        """Remember that a pointing was handed on complete with this set of files."""
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO announced VALUES (?,?,?,?)",
                (pointing, digest, reason, time.time()),
            )

    def announced(self, pointing: str | None = None) -> dict[str, str]:
        """pointing -> digest of the file set it was last announced with (all, or one)."""
        if pointing is None:
            return dict(self._db.execute("SELECT pointing, digest FROM announced"))
        query = "SELECT pointing, digest FROM announced WHERE pointing = ?"
        return dict(self._db.execute(query, (pointing,)))


def _pointing_spans(chunk: Chunk) -> tuple[tuple[str, float, float], ...]:
    if chunk.kind != "pointing":
        return ()
    cols = chunk.columns
    return tuple(
        (
            str(pid),
            absolute_seconds(float(start), chunk.mjdref),
            absolute_seconds(float(stop), chunk.mjdref),
        )
        for pid, start, stop in zip(cols["POINTING"], cols["TSTART"], cols["TSTOP"], strict=True)
    )


class Quarantine:
    """A directory of refused inputs, each beside a ``<name>.reason`` JSON file."""

    def __init__(self, directory: Path, log: IngestLog) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = log

    def _free_name(self, name: str) -> str:
        base = sanitize_name(name)
        if base.endswith(".reason"):  # refused bytes must never pose as a reason record
            base += "_"
        candidate, n = base, 1
        while os.path.lexists(self.directory / candidate) or os.path.lexists(
            self.directory / f"{candidate}.reason"
        ):
            n += 1
            candidate = f"{base}~{n}"
        return candidate

    def move(
        self, path: Path, source: str, problem: Problem, sha256: str | None = None
    ) -> Path | None:
        """Move an inbox entry (file, symlink, fifo: never followed) here; None if it vanished.

        Across file systems a regular file is copied and removed, anything else removed.
        If even that fails (permissions), the entry stays where it is and the reason,
        written here, says so.
        """
        free = self._free_name(path.name)
        target = self.directory / free
        try:
            try:
                os.replace(path, target)  # renames the entry itself, never a link's target
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                if stat.S_ISREG(os.lstat(path).st_mode):
                    shutil.copyfile(path, target, follow_symlinks=False)
                else:
                    target = self.directory / f"{free}.removed"
                os.unlink(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            target = path
            problem = Problem(
                f"{problem.problem} (left in place at {printable(str(path))}: "
                f"could not be moved to quarantine: {exc})",
                problem.fix,
            )
        self._finish(path.name, target, self.directory / f"{free}.reason", source, problem, sha256)
        return target

    def store(self, data: bytes, name: str, source: str, problem: Problem, sha256: str) -> Path:
        """Keep refused bytes (an MQTT payload) as a file here."""
        target = self.directory / self._free_name(name)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self._finish(
            name, target, target.with_name(target.name + ".reason"), source, problem, sha256
        )
        return target

    def _finish(
        self,
        name: str,
        target: Path,
        reason_path: Path,
        source: str,
        problem: Problem,
        sha256: str | None,
    ) -> None:
        reason = {
            "name": printable(name),
            "source": source,
            "problem": problem.problem,
            "fix": problem.fix,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sha256": sha256,
        }
        reason_path.write_text(json.dumps(reason, indent=1) + "\n")
        self.log.record_quarantine(name, target, source, sha256, problem)
