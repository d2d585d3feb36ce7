"""The Dask executor on a real LocalCluster of 2 worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from nrt.cache import Cache, Index, LocalTier
from nrt.execute import LocalExecutor, run
from nrt.executors.dask import DaskExecutor
from tests.reprocess.conftest import runs
from tests.reprocess.graph import build


def open_cache(tmp_path: Path, name: str) -> Cache:
    """A cache of its own (Cache.open would follow $NRT_CACHE_DIR, shared by the test)."""
    root = tmp_path / name / "cache"
    return Cache([LocalTier(root)], Index(tmp_path / name / "index.db"), lock_dir=root / ".locks")


def graph(pointings: list[str], **kwargs) -> list:
    return [t for p in pointings for t in build(p, **kwargs)]


def signatures(targets: list) -> dict[str, tuple[str, bool]]:
    """signature -> (element name, cached) over the whole graph."""
    return {e.signature: (type(e).__name__, type(e).cached) for t in targets for e in t.walk()}


def test_same_products_as_a_serial_run_each_computed_once(client, side_dirs, tmp_path):
    pointings = [f"0100{i:04d}0010" for i in range(4)]
    serial = open_cache(tmp_path, "serial")
    for target in graph(pointings):
        run(target, cache=serial, executor=LocalExecutor(max_workers=1))

    before = runs(side_dirs["runlog"])
    cache = open_cache(tmp_path, "dask")
    report = DaskExecutor(client).reprocess(graph(pointings), cache)
    ran = runs(side_dirs["runlog"]) - before

    sigs = signatures(graph(pointings))
    assert report.errors == {}
    assert report.submitted == len(sigs) == 4 * 5 + 1  # 5 per pointing + one shared Calibration
    assert ran == Counter({(name, s): 1 for s, (name, _) in sigs.items()}), "each result ran once"
    assert {r["pid"] for r in report.results.values()} <= set(client.run(os.getpid).values())
    for s, (name, cached) in sigs.items():
        if not cached:
            assert not cache.local.has(s), f"{name} is cached = False: never stored"
            continue
        mine, theirs = cache.local.read_manifest(s), serial.local.read_manifest(s)
        assert mine["files"] == theirs["files"], f"{name}: payload checksums differ"
        assert mine["outputs"] == theirs["outputs"]
        assert "local" in cache.index.get(s)["tiers"], "the client recorded it in the index"
    assert cache.verify()["corrupt"] == []


def test_a_second_run_submits_only_what_is_missing(client, side_dirs, tmp_path):
    pointings = ["020000010010", "020000020010"]
    cache = open_cache(tmp_path, "c")
    executor = DaskExecutor(client)
    first = executor.reprocess(graph(pointings), cache)
    assert first.errors == {} and first.submitted == 11

    again = executor.reprocess(graph(pointings), cache)
    assert (again.submitted, again.held) == (0, 2), "both targets held: nothing else is visited"

    summary, spectrum = graph(pointings)[1], graph(pointings)[1].input_spectrum
    for element in (summary, spectrum):
        cache.local.delete(element.signature)
        cache.index.forget(element.signature)
    cache.memory.clear()
    before = runs(side_dirs["runlog"])
    third = executor.reprocess(graph(pointings), cache)
    ran = runs(side_dirs["runlog"]) - before
    # Summary and Spectrum again, and Background (not stored: submitted, though a worker
    # may still hold it in memory); everything else is read from the cache.
    assert third.submitted == 3
    assert ran[("Summary", summary.signature)] == ran[("Spectrum", spectrum.signature)] == 1
    assert {name for name, _ in ran} <= {"Summary", "Spectrum", "Background"}
    assert sum(ran.values()) <= 3


def test_run_is_a_drop_in_executor(client, tmp_path):
    cache = open_cache(tmp_path, "c")
    target = build("030000010010")[0]
    target.get(cache=cache, executor=DaskExecutor(client))
    assert target.report == {"pointing": "030000010010"}
    assert target.total > 0


def test_a_worker_killed_mid_task_is_retried_elsewhere(client, side_dirs, tmp_path):
    cache = open_cache(tmp_path, "c")
    targets = build("040000010010", slow=True)
    slow = targets[-1]
    marker = side_dirs["kill"] / "marker"
    result = {}
    before = runs(side_dirs["runlog"], "start"), runs(side_dirs["runlog"], "end")

    def go():
        result["report"] = DaskExecutor(client).reprocess(targets, cache)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the Slow task never started"
        time.sleep(0.05)
    victim = int(marker.read_text())
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=60)
    assert not thread.is_alive(), "the run did not finish after the worker was killed"

    report = result["report"]
    assert report.errors == {}
    assert report.results[slow.signature]["status"] == "ok"
    assert report.results[slow.signature]["pid"] != victim, "retried in another process"
    started = runs(side_dirs["runlog"], "start") - before[0]
    ended = runs(side_dirs["runlog"], "end") - before[1]
    assert started[("Slow", slow.signature)] == 2 and ended[("Slow", slow.signature)] == 1
    for element in {e.signature: e for t in targets for e in t.walk()}.values():
        if type(element).cached:
            assert cache.local.has(element.signature)
            assert cache.index.get(element.signature) is not None
            assert ended[(type(element).__name__, element.signature)] == 1, "stored once"
    assert cache.verify() == {
        "checked": 6,
        "corrupt": [],
        "unindexed": 0,
        "dangling": 0,
        "staging_cleaned": 0,
    }


def test_errors_and_expected_failures_are_reported_not_fatal(client, tmp_path):
    from tests.reprocess.graph import Broken, Empty, UsesBoth

    cache = open_cache(tmp_path, "c")
    events = build("080000010010")[0].input_lightcurve.input_events
    broken, empty = Broken(input_events=events), Empty(input_events=events)
    fine = build("080000020010")[0]
    targets = [UsesBoth(input_broken=broken, input_empty=empty), empty, fine]
    report = DaskExecutor(client).reprocess(targets, cache)
    assert "ValueError: bad channel in 080000010010" in report.errors[broken.signature]
    assert report.errors[targets[0].signature].startswith("upstream failed")
    assert report.results[empty.signature]["status"] == "failed"
    assert report.results[empty.signature]["error"] == "too few counts"
    assert cache.local.read_manifest(empty.signature)["status"] == "failed", "negative result kept"
    assert not cache.local.has(broken.signature), "an unexpected error is not cached"
    assert cache.local.has(fine.signature), "other pointings went on"
    assert report.failed == 1 and len(report.errors) == 2


def test_works_with_a_client_that_is_not_the_default_one(cluster, tmp_path):
    """A process may hold several clients; the run must follow its own, not the newest."""
    from distributed import Client, LocalCluster

    with (
        Client(cluster) as mine,
        LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as other_cluster,
        Client(other_cluster) as newest,
    ):
        assert Client.current() is newest
        report = DaskExecutor(mine).reprocess(build("100000010010"), open_cache(tmp_path, "c"))
        assert report.errors == {} and report.ok == 6


def test_inputs_held_in_a_read_only_archive_are_read_not_recomputed(client, side_dirs, tmp_path):
    pointing = "120000010010"
    archive_root = tmp_path / "archive"
    events = build(pointing)[0].input_lightcurve.input_events
    run(events, cache=Cache([LocalTier(archive_root)], None), executor=LocalExecutor(1))
    before_files = sorted(p.relative_to(archive_root) for p in archive_root.rglob("*"))

    root = tmp_path / "shared"
    cache = Cache(
        [LocalTier(root), LocalTier(archive_root, read_only=True, name="archive")],
        Index(tmp_path / "index.db"),
        lock_dir=root / ".locks",
    )
    before = runs(side_dirs["runlog"])
    report = DaskExecutor(client).reprocess(build(pointing), cache)
    ran = runs(side_dirs["runlog"]) - before
    assert report.errors == {} and report.held == 1 and report.submitted == 5
    assert ("Events", events.signature) not in ran, "read from the archive, not recomputed"
    assert cache.local.has(events.signature), "promoted into the shared cache by a worker"
    after_files = sorted(p.relative_to(archive_root) for p in archive_root.rglob("*"))
    assert after_files == before_files, "nothing written to the read-only archive"
