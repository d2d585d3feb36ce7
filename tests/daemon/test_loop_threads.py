"""The event loop never touches SQLite: every statement on the ingest log, the alert
outbox and the localization record runs on that database's own thread (and the
cache index's on worker threads).

The real daemon runs in-process twice on one state directory (a first life fed
through the inbox, then a restart that restores, warms up and resumes from that
state), with every SQLite connection the process opens traced: the thread that
opened it, ran each statement on it, and closed it. Nothing is allowed on the
loop's thread, not even at start-up (the daemon opens these databases on their
threads; the loop only waits for the outbox and the localization record to open,
before READY) or at shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from nrt import config as configuration
from nrt.daemon import Daemon
from nrt.systemd import Notifier
from tests.daemon.harness import copy_telemetry, feed

#: database file -> the thread name prefix that alone may use it.
OWNERS = {
    "ingest.sqlite": "nrt-ingest",
    "alerts-outbox.sqlite": "nrt-outbox",
    "localizations.sqlite": "nrt-localization",
}


class _Trace:
    """Which threads opened, used and closed each database (by file name)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.statements: dict[str, list[str]] = defaultdict(list)  # on the main thread

    def note(self, name: str, what: str = "") -> None:
        thread = threading.current_thread()
        with self.lock:
            self.threads[name][thread.name] += 1
            if thread is threading.main_thread():
                self.statements[name].append(what)


@pytest.fixture
def trace(monkeypatch) -> _Trace:
    found = _Trace()
    connect = sqlite3.connect

    class Traced(sqlite3.Connection):
        def close(self) -> None:
            found.note(self.name, "close")
            super().close()

    def traced_connect(database, *args, **kwargs):
        name = Path(str(database).removeprefix("file:").split("?")[0]).name
        found.note(name, "connect")
        kwargs.setdefault("factory", Traced)
        db = connect(database, *args, **kwargs)
        db.name = name
        db.set_trace_callback(lambda statement: found.note(name, statement))
        return db

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    return found


def _config(tmp_path: Path) -> configuration.Config:
    base = configuration.Config()
    return dataclasses.replace(
        base,
        paths=dataclasses.replace(
            base.paths,
            state=str(tmp_path / "state"),
            cache=str(tmp_path / "cache"),
            inbox=str(tmp_path / "inbox"),
        ),
        mqtt=dataclasses.replace(base.mqtt, enabled=False),  # alerts go to a directory
        metrics=dataclasses.replace(base.metrics, listen=""),
        quicklook=dataclasses.replace(base.quicklook, grace=2.0),
        cache=dataclasses.replace(base.cache, gc_interval=0.5),  # prunes run too
    )


class _Notifier(Notifier):
    """No systemd here: notes when the daemon says READY."""

    readied: float | None = None

    def ready(self, status: str = "") -> bool:
        self.readied = self.readied or time.monotonic()
        return False


async def _live(config: configuration.Config, until) -> Daemon:
    """Run the daemon until `until(daemon)` holds, then stop it as SIGTERM does."""
    daemon = Daemon(config, notifier=_Notifier())
    task = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + 180.0
    while not (daemon.notifier.readied and await until(daemon)):
        assert not task.done(), "the daemon ended by itself"
        assert time.monotonic() < deadline, "the daemon did not get there in time"
        await asyncio.sleep(0.2)
    daemon.stop_event.set()
    assert await asyncio.wait_for(task, 120) == 0
    return daemon


def test_the_loop_never_touches_sqlite(tmp_path, telemetry, trace):
    sim_dir, truth = telemetry
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    config = _config(tmp_path)
    fed: list[bool] = []

    async def everything_handled(daemon: Daemon) -> bool:
        if not fed:
            fed.append(True)
            await asyncio.to_thread(feed, files, Path(config.paths.inbox))
        # every chunk taken, the pointings handed on (grace 2 s) and their graphs done
        done = {r.pointing for r in daemon.pointings.results}
        return daemon.summary.chunks == len(files) and done >= {p["id"] for p in truth["pointings"]}

    async def a_while_after_ready(daemon: Daemon) -> bool:  # restored, warmed up, resumed
        return time.monotonic() - daemon.notifier.readied > 2.0  # gauges, polls, prunes

    first = asyncio.run(_live(config, everything_handled))
    assert first.summary.alerts, "the test needs alerts (outbox and localization writes)"
    second = asyncio.run(_live(config, a_while_after_ready))
    assert second.summary.chunks == 0  # nothing new: all known from the first life

    assert set(OWNERS) <= set(trace.threads), "a database never used: the trace does not work"
    for name, used in trace.threads.items():  # the cache index (index.db) too
        assert threading.main_thread().name not in used, (
            f"{name} used on the event loop's thread: {trace.statements[name][:10]}"
        )
    for name, owner in OWNERS.items():
        used = dict(trace.threads[name])
        assert all(thread.startswith(owner) for thread in used), (name, used)
