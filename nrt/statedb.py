"""Opening the daemon's small SQLite state files (ingest log, pending localizations).

Both are WAL databases with ``synchronous=NORMAL`` (a commit survives a killed
process; a power cut may lose the last few, which the inbox rescan and the outbox
make good), and both are *rebuildable*: when one is damaged, it is set aside with
its WAL and shared-memory files under a ``.damaged-<time>`` name, for a post-mortem,
and a fresh one is started. The alert outbox is not opened here: it is not
rebuildable, so it is salvaged row by row instead (``nrt.alerts.outbox.repair``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

#: The files SQLite keeps for one WAL database.
SUFFIXES = ("", "-wal", "-shm")


def open_wal(path: Path, schema: str, probe: str, *, threads: bool = False) -> sqlite3.Connection:
    """Open (creating) `path` with `schema`; reading table `probe` checks it is sound.

    ``threads``: the connection is handed between threads (the caller serializes use).
    Raises ``sqlite3.DatabaseError`` for a damaged file.

    SQLite's automatic checkpoint stays on, in the writing connection: checkpoints
    from another thread (tried, to keep the sync off the daemon's loop) never catch
    up with a writer that commits hundreds of times a second, so the WAL is never
    reset and grows without bound (the soak: 6.6 GB in 4 simulated days).
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=not threads)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(schema)
        db.execute(f"SELECT count(*) FROM {probe}").fetchone()
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def set_aside(path: Path) -> Path:
    """Move a damaged database and its WAL files out of the way; the new name."""
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    for suffix in SUFFIXES:
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    return aside


def open_or_reset(
    path: Path,
    schema: str,
    probe: str,
    *,
    damaged: Callable[[sqlite3.DatabaseError, Path], None],
    threads: bool = False,
) -> sqlite3.Connection:
    """``open_wal``; a damaged file is set aside (``damaged(error, aside)`` says so and
    counts it) and a fresh database started in its place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return open_wal(path, schema, probe, threads=threads)
    except sqlite3.DatabaseError as exc:
        damaged(exc, set_aside(path))
        return open_wal(path, schema, probe, threads=threads)
