"""The inbox source: telemetry files dropped into a directory (DESIGN.md sections 5 and 9).

Producers write a file under a temporary name and rename it into the inbox. We watch
the directory with ``watchfiles`` (inotify on Linux), and rescan it in full at start
and periodically, because events are lost while the daemon is down or on network
file systems.

A file is read only when no process holds it open for writing. On Linux that is
asked of the kernel directly: a read lease (``F_SETLEASE``) is granted only when
nobody has the file open for writing, so a renamed-in file is read at once and a
file written in place waits until its writer closes it. Where leases are not
available (another owner without ``CAP_LEASE``, NFS), the file must keep the same
size and mtime for ``settle`` seconds. In both cases the size and mtime are checked
again around the read, and the bytes that were hashed are the bytes that are parsed.

Each content hash is handled once (``IngestLog``), also across restarts; a file
already seen with the same inode, size and times is skipped without reading it.
Anything that cannot be parsed is moved to the quarantine with a reason, and the
source goes on. Parsed chunks go onto a bounded ``asyncio.Queue``: when it is full,
the source waits (the files wait in the inbox; nothing is dropped).

The ingest log and the quarantine are used through ``AsyncIngestLog``: their SQLite
calls and file moves run on the log's thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from nrt import metrics
from nrt.telemetry.formats import (
    MAX_CHUNK_BYTES,
    Chunk,
    TelemetryError,
    data_order,
    read_chunk,
)
from nrt.telemetry.ingest import (
    FileIdentity,
    IngestLog,
    Problem,
    Quarantine,
    file_identity,
    is_safe_name,
    is_temp_name,
    printable,
)
from nrt.telemetry.ingestthread import AsyncIngestLog

log = logging.getLogger(__name__)

SOURCE = "inbox"


@dataclass
class _Waiting:
    """A file not ready yet: last observation and when to look again."""

    size: int
    mtime_ns: int
    due: float


async def parse_off_loop(data: bytes, name: str, sha256: str) -> Chunk | TelemetryError:
    """``read_chunk`` on a worker thread, so a big chunk never blocks the event loop."""
    try:
        return await asyncio.to_thread(read_chunk, data, name, sha256=sha256)
    except TelemetryError as exc:
        return exc


def _writers_absent(path: Path) -> bool | None:
    """True if no process has ``path`` open for writing, False if one has, None if unknown."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True
    except BlockingIOError:
        return False
    except OSError:  # EACCES (not our file), EINVAL (file system without leases), ...
        return None
    finally:
        os.close(fd)


def _read_unchanged(path: Path, st: os.stat_result) -> bytes | None:
    """The file's bytes if it is still the file ``st`` describes before and after reading."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        if _identity(before) != _identity(st):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(st.st_size + 1)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if len(data) != st.st_size or _identity(after) != _identity(st):
        return None
    return data


def _list_entries(directory: Path) -> dict[str, FileIdentity]:
    """Entries to look at (no directories, no temporary names): path -> identity."""
    found: dict[str, FileIdentity] = {}
    for entry in sorted(os.scandir(directory), key=lambda e: data_order(e.name)):
        if is_temp_name(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        found[entry.path] = file_identity(st)
    return found


def _in_data_order(change: tuple[watchfiles.Change, str]) -> tuple:
    return data_order(os.path.basename(change[1]))


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _take(path: Path, st: os.stat_result, max_bytes: int) -> tuple[bytes, str] | None:
    """The bytes and their sha256, if the file is small enough and did not change."""
    if st.st_size > max_bytes:
        return None
    data = _read_unchanged(path, st)
    return None if data is None else (data, hashlib.sha256(data).hexdigest())


@dataclass
class _Look:
    """What one trip to a worker thread found out about an inbox entry."""

    st: os.stat_result | None = None  #: None: the entry is gone
    known: bool = False  #: same identity as a file already handled (or refused in place)
    absent: bool | None = None  #: no writer (True), a writer (False), unknown (None)
    taken: tuple[bytes, str] | None = None  #: its bytes and sha256, if read unchanged


def _look(path: Path, known: FileIdentity | None, max_bytes: int) -> _Look:
    """Everything ``handle`` needs from the file system, in one thread hop: the entry's
    ``lstat``; for a new regular file with a good name, whether anyone writes it, and if
    not, its bytes and hash (a renamed-in file costs this single hop before parsing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _Look()
    if known is not None and known == file_identity(st):
        return _Look(st, known=True)
    if not stat.S_ISREG(st.st_mode) or not is_safe_name(path.name):
        return _Look(st)
    absent = _writers_absent(path)
    return _Look(st, absent=absent, taken=_take(path, st, max_bytes) if absent else None)


def _quarantine_entry(
    quarantine: Quarantine, path: Path, problem: Problem, sha256: str | None
) -> tuple[Path | None, FileIdentity | None]:
    """Move an entry to the quarantine (on the log's thread): where it went, and, if it
    could not be moved, its identity (so it is not refused again until it changes)."""
    target = quarantine.move(path, SOURCE, problem, sha256)
    if target != path:
        return target, None
    try:
        return target, file_identity(os.lstat(path))
    except OSError:
        return target, None


def _kind_of_entry(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or other special file"


class InboxSource:
    """Watch ``inbox`` and put every new, complete, valid chunk on ``queue`` once.

    ``debounce_ms``/``step_ms`` go to ``watchfiles.awatch``: a batch of events is
    handed over ``step_ms`` after the last event (at most ``debounce_ms`` after the
    first), so a renamed-in file is seen within a few milliseconds.
    """

    def __init__(
        self,
        inbox: Path,
        queue: asyncio.Queue[Chunk],
        log: IngestLog | AsyncIngestLog,
        quarantine: Quarantine,
        *,
        rescan_interval: float = 30.0,
        settle: float = 2.0,
        poll_interval: float = 0.1,
        debounce_ms: int = 50,
        step_ms: int = 5,
        max_bytes: int = MAX_CHUNK_BYTES,
    ) -> None:
        self.inbox = Path(inbox).absolute()
        self.queue = queue
        #: the ingest log, used only through ``ingest`` (its thread) while running
        self.ingest = AsyncIngestLog.of(log)
        self.log = self.ingest.log
        self.quarantine = quarantine
        self.rescan_interval = rescan_interval
        self.settle = settle
        self.poll_interval = poll_interval
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.max_bytes = max_bytes
        self._todo: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._waiting: dict[str, _Waiting] = {}
        #: inbox files already handled: path -> identity (loaded from the log at start).
        self._known: dict[str, FileIdentity] = {}
        #: set once the first full scan has been queued and the watcher is running.
        self.started = asyncio.Event()

    # ------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set.

        Stopping abandons the file in hand (it is not recorded, so the next start
        handles it again); chunks already on the queue are the consumer's to drain.
        """
        await asyncio.to_thread(self.inbox.mkdir, parents=True, exist_ok=True)
        self._known = await self.ingest.files_in(self.inbox)
        tasks = [
            asyncio.create_task(self._watch(stop), name="inbox-watch"),
            asyncio.create_task(self._rescan_periodically(stop), name="inbox-rescan"),
            asyncio.create_task(self._recheck_waiting(stop), name="inbox-recheck"),
        ]
        worker = asyncio.create_task(self._work(), name="inbox-work")
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            worker.cancel()
            await asyncio.gather(*tasks, worker, return_exceptions=True)

    def _enqueue(self, path: str) -> None:
        if path not in self._queued:
            self._queued.add(path)
            self._todo.put_nowait(path)

    def _filter(self, change: watchfiles.Change, path: str) -> bool:
        return change != watchfiles.Change.deleted and not is_temp_name(os.path.basename(path))

    async def _watch(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                async for changes in watchfiles.awatch(
                    self.inbox,
                    watch_filter=self._filter,
                    debounce=self.debounce_ms,
                    step=self.step_ms,
                    stop_event=stop,
                    recursive=False,
                ):
                    failures = 0
                    for _change, path in sorted(changes, key=_in_data_order):
                        self._enqueue(path)
            except Exception as exc:
                # The directory vanished, inotify limits, or a name that is not UTF-8
                # (watchfiles gives up on the whole batch): restart, and rescan for
                # whatever the lost batch held.
                log.warning("watching %s failed (%s); restarting the watch", self.inbox, exc)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                failures += 1
                await self.rescan()

    async def _rescan_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.rescan()
            self.started.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rescan_interval)

    async def rescan(self) -> None:
        """Queue every inbox entry not handled yet; forget handled files that left.

        Listing and stat run on a worker thread, and handled files are recognised by
        inode, size and times from memory, so a large inbox costs no reads.
        """
        try:
            listing = await asyncio.to_thread(_list_entries, self.inbox)
        except OSError as exc:
            log.warning("cannot list inbox %s: %s", self.inbox, exc)
            return
        for path, identity in listing.items():
            if self._known.get(path) != identity:
                self._enqueue(path)
        gone = [path for path in self._known if path not in listing]
        if gone:
            for path in gone:
                del self._known[path]
            await self.ingest.forget_files(gone)

    async def _recheck_waiting(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.monotonic()
            for path, waiting in list(self._waiting.items()):
                if waiting.due <= now:
                    self._enqueue(path)
            await asyncio.sleep(self.poll_interval)

    async def _work(self) -> None:
        while True:
            path = await self._todo.get()
            self._queued.discard(path)
            try:
                await self.handle(Path(path))
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one file stop the source
                log.exception("unexpected error handling %s", printable(path))

    # ------------------------------------------------------------ one file

    async def handle(self, path: Path) -> None:
        """Look at one inbox entry: skip, wait, quarantine, or parse and emit it."""
        name = path.name
        if is_temp_name(name) or path.parent != self.inbox:
            return
        look = await asyncio.to_thread(_look, path, self._known.get(str(path)), self.max_bytes)
        st = look.st
        if st is None or look.known:  # gone; or handled, or refused in place
            self._waiting.pop(str(path), None)
            return
        if stat.S_ISDIR(st.st_mode):
            return
        if not stat.S_ISREG(st.st_mode):
            what = _kind_of_entry(st.st_mode)
            await self._quarantine(
                path,
                Problem(
                    f"is {what}, not a regular file (never followed or opened)",
                    "producers must write a regular file and rename it into the inbox",
                ),
            )
            return
        if not is_safe_name(name):
            await self._quarantine(
                path,
                Problem(
                    f"file name {printable(name)!r} has characters outside A-Z a-z 0-9 . _ + - "
                    "or is longer than 200 characters",
                    "name files <kind>_<pointing>_<seq>.fits",
                ),
            )
            return
        absent, taken = look.absent, look.taken
        if not absent:
            if not self._stable(path, st, absent):
                return
            taken = await asyncio.to_thread(_take, path, st, self.max_bytes)
        self._waiting.pop(str(path), None)
        if st.st_size > self.max_bytes:
            await self._quarantine(
                path,
                Problem(
                    f"file size: {st.st_size} bytes exceeds the {self.max_bytes}-byte limit "
                    "for one chunk (not read)",
                    "split the telemetry into chunks of a few seconds",
                ),
            )
            return
        if taken is None:  # changed under us: look again when it settles
            self._wait(path, st)
            return
        data, sha = taken
        if not await self.ingest.claim(sha):
            if await self.ingest.has(sha):
                await self._remember(path, st, sha)
                await self.ingest.count_duplicate(SOURCE)
            else:  # the same bytes are being handled from MQTT right now: look again
                self._wait(path, st)
            return
        try:
            result = await parse_off_loop(data, name, sha)
            if isinstance(result, TelemetryError):
                await self._quarantine(path, Problem.of(result), sha)
                return
            await self.queue.put(result)
            # Recorded right after the put, before this coroutine yields again: the
            # commit is queued before a consumer can take the chunk, and the consumer
            # waits for it (``AsyncIngestLog.committed``). Stopped while waiting on a
            # full queue, the file is neither recorded nor lost.
            await self.ingest.record_chunk(result, path, SOURCE, file=file_identity(st))
            self._known[str(path)] = file_identity(st)  # remembered with the record
            # The rename that put the file here set its ctime: that is when it appeared.
            metrics.INGEST_LATENCY.labels(SOURCE).observe(max(0.0, time.time() - st.st_ctime))
        finally:
            self.ingest.release(sha)

    def _stable(self, path: Path, st: os.stat_result, absent: bool | None) -> bool:
        """Without a lease answer: ready once size and mtime held still for ``settle`` s."""
        previous = self._waiting.get(str(path))
        if absent is None and previous is not None:
            unchanged = (previous.size, previous.mtime_ns) == (st.st_size, st.st_mtime_ns)
            if unchanged and time.time() - st.st_mtime_ns / 1e9 >= self.settle:
                return True
        self._wait(path, st)
        return False

    async def _remember(self, path: Path, st: os.stat_result, sha: str) -> None:
        self._known[str(path)] = file_identity(st)
        await self.ingest.remember_file(path, file_identity(st), sha)

    def _wait(self, path: Path, st: os.stat_result) -> None:
        self._waiting[str(path)] = _Waiting(
            st.st_size, st.st_mtime_ns, time.monotonic() + min(self.poll_interval, self.settle)
        )

    async def _quarantine(self, path: Path, problem: Problem, sha256: str | None = None) -> None:
        self._waiting.pop(str(path), None)
        target, left = await self.ingest.call(
            _quarantine_entry, self.quarantine, path, problem, sha256
        )
        if left is not None:  # could not be moved: do not refuse it again until it changes
            self._known[str(path)] = left
        if target is not None:
            log.warning(
                "quarantined %s -> %s: %s", printable(path.name), target.name, problem.problem
            )
