"""Inbox reaction time: renamed-in file -> parsed chunk on the queue.

Compares our watchfiles settings with watchfiles' defaults (debounce 1600 ms, step
50 ms) and with rescanning alone (what a poller does), and shows the idle CPU each
setting costs (the watcher thread wakes every `step` ms even when nothing happens).

    .venv/bin/python tests/benchmarks/bench_inbox.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nrt.telemetry import inbox as inbox_module
from tests.sources import factory as f
from tests.sources.harness import inbox_running

FILES = 30


async def measure(root: Path, **options) -> tuple[list[float], float]:
    async with inbox_running(root, **options) as r:
        f.rename_in(r.inbox, f.name("acs", seq=0), f.acs(t0=995.0))
        await r.next(timeout=10)
        delays = []
        for seq in range(1, FILES + 1):
            data = f.acs(t0=1000.0 + 5 * seq, seed=seq)
            start = time.perf_counter()
            f.rename_in(r.inbox, f.name("acs", seq=seq), data)
            await r.next(timeout=10)
            delays.append(time.perf_counter() - start)
            await asyncio.sleep(0.02)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(2.0)
        idle = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return delays, idle


async def throughput(root: Path, n: int = 1000) -> float:
    """Chunks per second when `n` files are already waiting (a backlog after downtime)."""
    inbox = root / "inbox"
    inbox.mkdir()
    for seq in range(n):
        f.rename_in(inbox, f.name("acs", seq=seq), f.acs(t0=1000.0 + 5 * seq, seed=seq))
    start = time.perf_counter()
    async with inbox_running(root, maxsize=64) as r:
        for _ in range(n):
            await r.next(timeout=30)
    return n / (time.perf_counter() - start)


async def no_watch(self, stop):
    await stop.wait()


def main() -> None:
    settings = [
        ("nrt default (debounce 50, step 5)", {}),
        ("step 1 ms", {"step_ms": 1}),
        ("step 2 ms", {"step_ms": 2}),
        ("step 10 ms", {"step_ms": 10}),
        ("watchfiles defaults (1600/50)", {"debounce_ms": 1600, "step_ms": 50}),
        ("rescan only, every 1 s", {"rescan_interval": 1.0, "_no_watch": True}),
    ]
    rows = []
    for label, options in settings:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["NRT_STATE_DIR"] = str(Path(tmp) / "state")
            original = inbox_module.InboxSource._watch
            if options.pop("_no_watch", False):
                inbox_module.InboxSource._watch = no_watch
            try:
                delays, idle = asyncio.run(measure(Path(tmp), **options))
            finally:
                inbox_module.InboxSource._watch = original
        delays.sort()
        rows.append((label, statistics.median(delays), delays[int(0.95 * len(delays))], idle))
    base = rows[0][1]
    print(f"{'setting':36} {'median ms':>10} {'p95 ms':>8} {'x ours':>7} {'idle CPU':>9}")
    for label, median, p95, idle in rows:
        print(
            f"{label:36} {median * 1e3:10.1f} {p95 * 1e3:8.1f} {median / base:7.1f} "
            f"{idle * 100:8.1f}%"
        )
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NRT_STATE_DIR"] = str(Path(tmp) / "state")
        rate = asyncio.run(throughput(Path(tmp)))
    print(f"backlog of 1000 ACS chunks found at start: {rate:.0f} chunks/s")


if __name__ == "__main__":
    main()
