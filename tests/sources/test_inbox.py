"""The inbox source against real files, real inotify and a real SQLite state."""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import threading
import time
from pathlib import Path

import pytest

from nrt.telemetry import inbox as inbox_module
from tests.sources import factory as f
from tests.sources.harness import inbox_running


def run(coro):
    return asyncio.run(coro)


def test_renamed_in_file_is_emitted_within_milliseconds(tmp_path: Path) -> None:
    async def scenario() -> list[float]:
        async with inbox_running(tmp_path) as r:
            f.rename_in(r.inbox, f.name("acs", seq=0), f.acs(t0=995.0))
            await r.next()  # warm-up: threads and caches
            delays = []
            for seq in range(1, 21):
                data = f.acs(t0=1000.0 + 5 * seq, seed=seq)
                start = time.perf_counter()
                f.rename_in(r.inbox, f.name("acs", seq=seq), data)
                chunk = await r.next()
                delays.append(time.perf_counter() - start)
                assert chunk.sha256 == hashlib.sha256(data).hexdigest()
                assert chunk.name == f.name("acs", seq=seq)
            return delays

    delays = run(scenario())
    print(
        f"\ninbox rename-in -> chunk on queue: median {statistics.median(delays) * 1e3:.1f} ms, "
        f"max {max(delays) * 1e3:.1f} ms over {len(delays)} files"
    )
    assert statistics.median(delays) < 0.05
    assert max(delays) < 0.5


def test_temporary_names_are_ignored(tmp_path: Path) -> None:
    data = f.acs()
    temp_names = [".acs_025600010010_000001.fits", "acs_025600010010_000001.fits.tmp", "x.part"]

    async def scenario() -> None:
        async with inbox_running(tmp_path) as r:
            for temp in temp_names:
                (r.inbox / temp).write_bytes(data)  # written in place, never renamed
            await r.source.rescan()
            assert await r.quiet(0.5) == []
            f.rename_in(r.inbox, f.name("acs"), data)
            assert (await r.next()).name == f.name("acs")
            assert await r.quiet() == []
            assert sorted(p.name for p in r.inbox.iterdir()) == sorted([*temp_names, f.name("acs")])
            assert r.reasons() == {}

    run(scenario())


def _write_slowly(path: Path, data: bytes, pause: float, done: dict) -> None:
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        os.fsync(fh.fileno())
        time.sleep(pause)
        fh.write(data[len(data) // 2 :])
        fh.flush()
    done["closed_at"] = time.perf_counter()


@pytest.mark.parametrize("leases", [True, False], ids=["lease-probe", "stable-size-fallback"])
def test_growing_file_is_not_parsed_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leases: bool
) -> None:
    if not leases:  # as on NFS or for files of another user: only size/mtime stability
        monkeypatch.setattr(inbox_module, "_writers_absent", lambda path: None)
    data = f.isgri(seconds=5.0)

    async def scenario() -> None:
        async with inbox_running(tmp_path, settle=0.8) as r:
            done: dict = {}
            writer = threading.Thread(
                target=_write_slowly, args=(r.inbox / f.name("isgri"), data, 0.5, done)
            )
            writer.start()
            chunk = await r.next(timeout=10)
            got_at = time.perf_counter()
            writer.join()
            assert got_at >= done["closed_at"]
            assert chunk.sha256 == hashlib.sha256(data).hexdigest()
            assert chunk.nrows == 2000
            assert await r.quiet() == []
            assert r.reasons() == {}

    run(scenario())


def test_each_content_is_handled_once_across_restarts(tmp_path: Path) -> None:
    files = {f.name("acs", seq=s): f.acs(t0=1000.0 + 5 * s, seed=s) for s in range(3)}

    async def first() -> None:
        async with inbox_running(tmp_path) as r:
            for filename, data in files.items():
                f.rename_in(r.inbox, filename, data)
            got = [await r.next() for _ in files]
            assert sorted(c.name for c in got) == sorted(files)
            f.rename_in(r.inbox, f.name("acs", seq=7), files[f.name("acs", seq=0)])  # same bytes
            assert await r.quiet() == []
            assert r.log.counts[("inbox", "duplicate")] == 1

    run(first())
    # While the daemon is down: one new file, and the same content once more under a new name.
    f.rename_in(tmp_path / "inbox", f.name("acs", seq=3), f.acs(t0=1015.0, seed=3))
    f.rename_in(tmp_path / "inbox", f.name("acs", seq=8), files[f.name("acs", seq=1)])
    (tmp_path / "inbox" / f.name("acs", seq=2)).unlink()  # archived by an operator

    async def second() -> None:
        async with inbox_running(tmp_path) as r:  # a fresh process: state from SQLite only
            chunk = await r.next()
            assert chunk.name == f.name("acs", seq=3)
            assert await r.quiet() == []
            assert r.log.counts[("inbox", "handled")] == 1
            assert r.log.counts[("inbox", "duplicate")] == 1  # only seq 8 had to be hashed
            assert len(r.log.records()) == 4
            known = {Path(p).name for p in r.log.files_in(r.inbox)}
            assert known == {f.name("acs", seq=s) for s in (0, 1, 3, 7, 8)}  # seq 2 forgotten

    run(second())


def test_full_queue_holds_the_source_back_without_loss(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with inbox_running(tmp_path, maxsize=2) as r:
            for seq in range(12):
                f.rename_in(r.inbox, f.name("hk", seq=seq), f.hk(t0=1000.0 + 5 * seq))
            await asyncio.sleep(0.5)
            assert r.queue.qsize() == 2  # the source waits on the full queue
            names = []
            for _ in range(12):
                names.append((await r.next()).name)
                await asyncio.sleep(0.01)
            assert names == [f.name("hk", seq=s) for s in range(12)]

    run(scenario())


def test_periodic_rescan_finds_files_the_watcher_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_watch(self, stop):  # as if every event were lost (NFS, inotify overflow)
        await stop.wait()

    monkeypatch.setattr(inbox_module.InboxSource, "_watch", no_watch)

    async def scenario() -> None:
        async with inbox_running(tmp_path, rescan_interval=0.3) as r:
            f.rename_in(r.inbox, f.name("hk"), f.hk())
            assert (await r.next(timeout=3)).name == f.name("hk")

    run(scenario())
