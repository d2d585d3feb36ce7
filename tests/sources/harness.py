"""Running a source for a test: real directories, real SQLite, a real event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nrt.telemetry.formats import Chunk
from nrt.telemetry.inbox import InboxSource
from nrt.telemetry.ingest import IngestLog, Quarantine


@dataclass
class Running:
    root: Path
    inbox: Path
    queue: asyncio.Queue[Chunk]
    log: IngestLog
    quarantine: Quarantine
    source: InboxSource

    async def next(self, timeout: float = 5.0) -> Chunk:
        """The next chunk, once its record is committed (as the daemon's consumer waits)."""
        chunk = await asyncio.wait_for(self.queue.get(), timeout)
        await self.source.ingest.committed(chunk)
        return chunk

    async def quiet(self, seconds: float = 0.3) -> list[Chunk]:
        """Whatever arrives within `seconds` (expected: nothing)."""
        got = []
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(await asyncio.wait_for(self.queue.get(), seconds))
        return got

    def reasons(self) -> dict[str, dict]:
        """Quarantined entry name -> its parsed .reason file."""
        return {
            p.name.removesuffix(".reason"): json.loads(p.read_text())
            for p in self.quarantine.directory.glob("*.reason")
        }


@contextlib.asynccontextmanager
async def inbox_running(root: Path, maxsize: int = 100, **options) -> AsyncIterator[Running]:
    """An InboxSource on `root/inbox`, quarantine in `root/quarantine`, state from $NRT_STATE_DIR."""
    log = IngestLog()
    quarantine = Quarantine(root / "quarantine", log)
    queue: asyncio.Queue[Chunk] = asyncio.Queue(maxsize)
    options.setdefault("rescan_interval", 3600.0)
    source = InboxSource(root / "inbox", queue, log, quarantine, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    await asyncio.wait_for(source.started.wait(), 5)
    await asyncio.sleep(0.2)  # let the inotify watch be set up
    try:
        yield Running(root, source.inbox, queue, log, quarantine, source)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        log.close()
