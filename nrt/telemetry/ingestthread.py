"""The ingest log as the daemon uses it: every call on one thread of its own.

The event loop never waits on SQLite (DESIGN.md section 9): ``AsyncIngestLog`` runs
each call of an ``IngestLog`` on a single worker thread (``nrt-ingest``) and the loop
awaits the result. The synchronous ``IngestLog`` stays the one implementation (the
CLI, ``nrt reprocess`` and tests use it directly); this is only where it runs.

One thread, not a pool: calls run in the order they were made, so a chunk's
record is committed before anything asked later (a consumer's read, the file's
``remember_file``), and every write, with SQLite's automatic WAL checkpoint, comes
from that one connection (a checkpoint from another thread never caught up with
the writer: the soak's 6.6 GB WAL). Objects whose state is the log's in-memory view
(the pointing tracker, the quarantine) are driven through ``call`` too, so they
live on the same thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from nrt.telemetry.formats import Chunk
    from nrt.telemetry.ingest import ChunkRecord, FileIdentity, IngestLog

T = TypeVar("T")

#: The worker's thread name (and what a test looks for).
THREAD_NAME = "nrt-ingest"
#: Commits kept for ``committed`` to hand over without a read (a miss costs one read).
KEEP_COMMITS = 4096


class AsyncIngestLog:
    """An ``IngestLog`` whose every call runs, in order, on one dedicated thread."""

    def __init__(
        self, log: IngestLog, pool: concurrent.futures.ThreadPoolExecutor | None = None
    ) -> None:
        self.log = log
        self._pool = pool or _pool()
        #: content hash -> its record's commit, until a consumer takes it (``committed``).
        self._commits: dict[str, concurrent.futures.Future[ChunkRecord]] = {}

    @classmethod
    async def open(cls, path: Path) -> AsyncIngestLog:
        """Open (or reset a damaged) log on its own thread: not even start-up opens
        it on the loop."""
        from nrt.telemetry.ingest import IngestLog

        pool = _pool()
        log = await asyncio.wrap_future(pool.submit(IngestLog, path))
        facade = cls(log, pool)
        log.__dict__["aio"] = facade  # ``log.aio`` is this facade: one thread per log
        return facade

    @staticmethod
    def of(log: IngestLog | AsyncIngestLog) -> AsyncIngestLog:
        """The async facade of a log (a source may be handed either)."""
        return log if isinstance(log, AsyncIngestLog) else log.aio

    # ------------------------------------------------------------ running calls

    def _submit(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        return self._pool.submit(functools.partial(fn, *args, **kwargs))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the log's thread, after every call made before it."""
        return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Wait for the calls in flight, then let the thread go (from outside it)."""
        self._pool.shutdown(wait=True)

    async def close(self) -> None:
        """Close the log on its thread, then let the thread go."""
        self.log.__dict__.pop("aio", None)
        await self.call(self.log.close)
        self._pool.shutdown(wait=False)

    # ------------------------------------------------------------ content hashes

    async def claim(self, sha256: str) -> bool:
        return await self.call(self.log.claim, sha256)

    def release(self, sha256: str) -> None:
        """Give a claim back, without waiting: it is queued behind the calls in flight,
        so a later ``claim`` sees it, and it is safe in a ``finally`` of a cancelled task."""
        try:
            self._submit(self.log.release, sha256)
        except RuntimeError:  # the thread is gone (shut down): only a set in memory
            self.log.release(sha256)

    async def has(self, sha256: str) -> bool:
        return await self.call(self.log.has, sha256)

    async def count_duplicate(self, source: str) -> None:
        await self.call(self.log.count_duplicate, source)

    def record_chunk(
        self, chunk: Chunk, path: Path, source: str, *, file: FileIdentity | None = None
    ) -> Awaitable[ChunkRecord]:
        """Queue the chunk's record at once and return its commit to await.

        A source calls this right after putting the chunk on the daemon's queue and
        before it yields, so the commit is queued before the consumer can take the
        chunk; the consumer then waits for it with ``committed`` before acting on the
        chunk. Cancelling the waiter does not cancel the commit. ``file``: the inbox
        file's identity, remembered in the same call once the record is committed.
        """
        return self._commit(chunk, self._submit(_record, self.log, chunk, path, source, file))

    def record_new_chunk(self, chunk: Chunk, path: Path, source: str) -> Awaitable[ChunkRecord]:
        """``record_chunk`` unless the content is known (then its stored record), in one
        call: a replay's check and record (see ``record_chunk``)."""
        return self._commit(chunk, self._submit(_record_new, self.log, chunk, path, source))

    def _commit(
        self, chunk: Chunk, future: concurrent.futures.Future[ChunkRecord]
    ) -> Awaitable[ChunkRecord]:
        self._commits[chunk.sha256] = future
        while len(self._commits) > KEEP_COMMITS:  # nobody takes them (no consumer)
            del self._commits[next(iter(self._commits))]
        return asyncio.shield(asyncio.wrap_future(future))

    async def committed(self, chunk: Chunk) -> ChunkRecord | None:
        """The chunk's record once it is committed (None if the log never had it).

        Raises what the commit raised (e.g. a full disk).
        """
        future = self._commits.pop(chunk.sha256, None)
        if future is not None:
            return await asyncio.shield(asyncio.wrap_future(future))
        # Recorded earlier (a replay of handled data), or its commit was dropped from
        # ``_commits``: a read queued now runs after that commit.
        return await self.call(self.log.record, chunk.sha256)

    async def records(self, pointing: str | None = None) -> list[ChunkRecord]:
        return await self.call(self.log.records, pointing)

    async def announced(self, pointing: str | None = None) -> dict[str, str]:
        return await self.call(self.log.announced, pointing)

    async def prune(self, retain: float) -> int:
        return await self.call(self.log.prune, retain)

    # ------------------------------------------------------------ inbox files

    async def files_in(self, directory: Path) -> dict[str, FileIdentity]:
        return await self.call(self.log.files_in, directory)

    async def remember_file(self, path: Path, identity: FileIdentity, sha256: str) -> None:
        await self.call(self.log.remember_file, path, identity, sha256)

    async def forget_files(self, paths: Iterable[str]) -> None:
        await self.call(self.log.forget_files, list(paths))


def _record(
    log: IngestLog, chunk: Chunk, path: Path, source: str, file: FileIdentity | None
) -> ChunkRecord:
    record = log.record_chunk(chunk, path, source)
    if file is not None:
        log.remember_file(path, file, chunk.sha256)
    return record


def _record_new(log: IngestLog, chunk: Chunk, path: Path, source: str) -> ChunkRecord:
    return log.record(chunk.sha256) or log.record_chunk(chunk, path, source)


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME)
