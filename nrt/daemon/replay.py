"""A finite source: a directory of telemetry files pushed through the daemon's code path.

Files are taken in data order (pointing, then sequence number, then kind), as
fast as possible or paced at ``speed`` times real time. The directory is an
archive, not an inbox: unparseable files are reported and skipped, never moved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from nrt import metrics
from nrt.telemetry.errors import TelemetryError
from nrt.telemetry.formats import Chunk, data_order, read_chunk
from nrt.telemetry.ingest import IngestLog
from nrt.telemetry.ingestthread import AsyncIngestLog

log = logging.getLogger(__name__)

END = object()  #: put on the queue after the last chunk


def ordered_files(directory: Path) -> list[Path]:
    """Telemetry files in data order; other files are ignored (truth.json, notes)."""
    found = [(data_order(path.name), path) for path in directory.rglob("*.fits")]
    return [path for key, path in sorted(found) if key[0] == 0]


#: Files read per worker-thread hop.
READ_AHEAD = 8


def _read_all(paths: list[Path]) -> list[Chunk | TelemetryError]:
    out: list[Chunk | TelemetryError] = []
    for path in paths:
        try:
            out.append(read_chunk(path))
        except TelemetryError as exc:
            out.append(exc)
    return out


class ReplaySource:
    """Reads, checks and queues every chunk of a directory once, then ``END``."""

    def __init__(
        self,
        directory: Path,
        queue: asyncio.Queue,
        ingest: IngestLog | AsyncIngestLog,
        *,
        speed: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.queue = queue
        self.ingest = AsyncIngestLog.of(ingest)
        self.speed = speed
        self.on_progress = on_progress
        self.problems: list[tuple[str, str]] = []
        self.done = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        files = await asyncio.to_thread(ordered_files, self.directory)
        if not files:
            log.warning(
                "replay: no telemetry files (<kind>_<pointing>_<seq>.fits) under %s", self.directory
            )
        wall0 = time.monotonic()
        data0: float | None = None
        batch: list[Chunk | TelemetryError] = []
        for i, path in enumerate(files):
            if stop.is_set():
                break
            taken = time.monotonic()
            if not batch:  # a few files per thread hop: fewer GIL hand-overs per chunk
                batch = await asyncio.to_thread(_read_all, files[i : i + READ_AHEAD])
            chunk = batch.pop(0)
            if isinstance(chunk, TelemetryError):
                self.problems.append((str(path), str(chunk)))
                log.error("replay: skipped %s", chunk)
                continue
            if self.speed:
                data0 = chunk.tstart if data0 is None else data0
                delay = wall0 + (chunk.tstart - data0) / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.ingest.record_new_chunk(chunk, path, "replay")  # before the put
            await self.queue.put(chunk)
            metrics.INGEST_LATENCY.labels("replay").observe(time.monotonic() - taken)
            if self.on_progress:
                self.on_progress(i + 1, len(files))
        await self.queue.put(END)
        self.done.set()
