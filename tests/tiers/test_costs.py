"""The cost-aware hierarchy's decisions, with tiers of known, injected latency and bandwidth."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import nrt as da
from nrt.cache import Cache, Entry, Index, LocalTier, MemoryTier, TransferStats
from nrt.cache.commands import _fetch_decision
from nrt.cache.local import CacheWriteError
from nrt.cli import main


class ThrottledTier:
    """A directory tier behind a simulated link: every get sleeps latency + bytes/bandwidth.

    Its estimates start ignorant (1 ms, 1 GB/s) and learn from the transfers it makes.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        latency_s: float,
        bandwidth_bps: float,
        read_only: bool = False,
        put_delay: float = 0.0,
    ) -> None:
        self.inner = LocalTier(root, name=name)
        self.name, self.read_only = name, read_only
        self.latency_s, self.bandwidth_bps, self.put_delay = latency_s, bandwidth_bps, put_delay
        self.stats = TransferStats(latency_s=1e-3, bandwidth_bps=1e9)
        self.gets = self.puts = 0

    def has(self, signature: str) -> bool:
        return self.inner.has(signature)

    def get(self, signature: str) -> Entry | None:
        started = time.perf_counter()
        entry = self.inner.get(signature)
        if entry is None:
            return None
        self.gets += 1
        time.sleep(self.latency_s + entry.nbytes / self.bandwidth_bps)
        self.stats.record(time.perf_counter() - started, entry.nbytes)
        return entry

    def put(self, entry: Entry) -> None:
        if self.read_only:
            raise CacheWriteError(30, f"{self.name} is read-only")
        self.puts += 1
        time.sleep(self.put_delay)
        self.inner.put(entry)

    def seed(self, entry: Entry) -> None:
        """Place an entry directly (as another site would have), bypassing read-only."""
        self.inner.put(entry)

    def delete(self, signature: str) -> bool:
        return self.inner.delete(signature)

    def cost(self, nbytes: int) -> float:
        return self.stats.cost(nbytes)


class Product(da.Element):
    cached = True
    pointing = "070000010010"
    n = 8

    def main(self) -> None:
        self.values = np.arange(self.n, dtype=np.float64)


def entry_of(n: int, run_seconds: float, pointing: str = "070000010010") -> Entry:
    element = Product(n=n, pointing=pointing)
    return Entry(Cache.manifest_for(element, run_seconds), outputs=element._run_main())


def chain(tmp_path: Path, *tiers: ThrottledTier, **kwargs) -> Cache:
    local = LocalTier(tmp_path / "local")
    return Cache(
        [local, *tiers],
        Index(tmp_path / "index.db"),
        MemoryTier(),
        lock_dir=tmp_path / "locks",
        **kwargs,
    )


def train(tier: ThrottledTier, tmp_path: Path, rounds: int = 4) -> None:
    """Measure the link: small transfers teach latency, 1 MB ones bandwidth."""
    small, large = entry_of(4, 0.1, "train-small"), entry_of(131072, 0.1, "train-large")
    for entry in (small, large):
        tier.seed(entry)
    for entry in (small, large):
        for _ in range(rounds):
            tier.get(entry.signature)


def test_estimates_learn_the_injected_latency_and_bandwidth(tmp_path):
    link = ThrottledTier(tmp_path / "remote", "remote", latency_s=0.02, bandwidth_bps=20e6)
    assert link.cost(1 << 20) < 0.01, "before any transfer: the optimistic prior"
    train(link, tmp_path)
    assert 0.018 < link.stats.latency_s < 0.03
    assert 14e6 < link.stats.bandwidth_bps < 24e6
    expected = 0.02 + (1 << 20) / 20e6
    assert abs(link.cost(1 << 20) - expected) < 0.3 * expected


def test_lookup_takes_the_cheapest_tier_that_holds_it(tmp_path):
    fast = ThrottledTier(tmp_path / "fast", "fast", latency_s=0.001, bandwidth_bps=500e6)
    slow = ThrottledTier(tmp_path / "slow", "slow", latency_s=0.03, bandwidth_bps=10e6)
    train(fast, tmp_path)
    train(slow, tmp_path)
    cache = chain(tmp_path, slow, fast)  # declared order does not matter
    entry = entry_of(65536, run_seconds=10.0)
    fast.seed(entry)
    slow.seed(entry)
    before = fast.gets, slow.gets
    assert cache.lookup(entry.signature) is not None
    assert (fast.gets - before[0], slow.gets - before[1]) == (1, 0)


def test_recomputes_when_the_run_time_is_cheaper_than_the_transfer(tmp_path):
    slow = ThrottledTier(tmp_path / "slow", "slow", latency_s=0.03, bandwidth_bps=10e6)
    train(slow, tmp_path)
    cache = chain(tmp_path, slow)
    cheap, costly = entry_of(131072, run_seconds=0.01), entry_of(131073, run_seconds=5.0)
    for entry in (cheap, costly):  # 1 MB each: ~0.13 s to fetch
        slow.seed(entry)
        cache.index.record(entry.manifest | {"files": {"x": {"size": 1 << 20}}}, "slow")
    before = slow.gets
    assert cache.lookup(cheap.signature) is None, "0.01 s of compute beats a 0.13 s transfer"
    assert slow.gets == before
    plan = {o.tier.name: o.decision for o in cache.fetch_plan(cheap.signature)}
    assert plan["slow"].startswith("skip: recomputing") and plan["local"] == "try"
    assert cache.lookup(costly.signature) is not None, "5 s of compute: fetch it"
    assert slow.gets == before + 1


def test_a_hit_is_promoted_to_faster_tiers_never_into_a_read_only_one(tmp_path):
    site = ThrottledTier(tmp_path / "site", "site", latency_s=0.005, bandwidth_bps=100e6)
    archive = ThrottledTier(
        tmp_path / "archive", "archive", latency_s=0.03, bandwidth_bps=10e6, read_only=True
    )
    train(site, tmp_path)
    train(archive, tmp_path)
    cache = chain(tmp_path, site, archive)
    entry = entry_of(1000, run_seconds=10.0)
    archive.seed(entry)
    assert cache.lookup(entry.signature) is not None
    assert cache.local.has(entry.signature) and site.has(entry.signature)
    assert archive.puts == 0
    assert set(json.loads(cache.index.get(entry.signature)["tiers"])) == {"local", "site"}
    # From now on the local copy serves it: the archive is not asked again.
    cache.memory.clear()
    gets = archive.gets
    assert cache.lookup(entry.signature) is not None
    assert archive.gets == gets
    # A corrupt entry in the read-only archive is skipped but never deleted from it.
    cache.local.delete(entry.signature)
    site.delete(entry.signature)
    cache.memory.clear()
    path = archive.inner.path(entry.signature)
    npy = next(path.glob("*.npy"))
    npy.write_bytes(b"rotten")
    assert cache.lookup(entry.signature) is None
    assert npy.exists()


def test_costly_results_are_replicated_upward_in_the_background(tmp_path):
    remote = ThrottledTier(
        tmp_path / "remote", "remote", latency_s=0.03, bandwidth_bps=10e6, put_delay=0.5
    )
    cache = chain(tmp_path, remote, replicate_seconds_per_mib=1.0)
    costly, cheap = Product(n=1000), Product(n=131072)  # 8 kB, 1 MB
    started = time.perf_counter()
    cache.store(costly, costly._run_main(), run_seconds=2.0)  # ~256 s per MiB
    assert time.perf_counter() - started < 0.4, "the upload does not hold up the caller"
    cache.store(cheap, cheap._run_main(), run_seconds=0.01)  # 0.01 s per MiB: recompute instead
    cache.wait_replication(timeout=10)
    assert remote.has(costly.signature) and not remote.has(cheap.signature)
    assert "remote" in cache.index.get(costly.signature)["tiers"]
    assert remote.puts == 1


def test_measured_costs_survive_a_restart_through_the_index(tmp_path):
    remote = ThrottledTier(tmp_path / "remote", "remote", latency_s=0.02, bandwidth_bps=20e6)
    cache = chain(tmp_path, remote)
    entry = entry_of(131072, run_seconds=10.0)
    remote.seed(entry)
    train(remote, tmp_path)
    cache.lookup(entry.signature)
    cache.close()
    saved = cache.index.tier_stats()["remote"]
    assert saved["samples"] == remote.stats.samples == 9

    again = ThrottledTier(tmp_path / "remote", "remote", latency_s=0.02, bandwidth_bps=20e6)
    chain(tmp_path, again)
    assert again.stats.latency_s == saved["latency_s"]
    assert again.stats.bandwidth_bps == saved["bandwidth_bps"]


def test_cache_show_says_where_it_is_and_what_each_tier_would_cost(tmp_path):
    slow = ThrottledTier(tmp_path / "slow", "slow", latency_s=0.03, bandwidth_bps=10e6)
    train(slow, tmp_path)
    cache = chain(tmp_path, slow)
    entry = entry_of(131072, run_seconds=0.01)
    slow.seed(entry)
    cache.index.record(entry.manifest | {"files": {"x": {"size": 1 << 20}}}, "slow")
    tiers, decision = _fetch_decision(cache, entry.signature, cache.index.get(entry.signature))
    by_name = {t["tier"]: t for t in tiers}
    assert by_name["slow"]["has"] and not by_name["local"]["has"]
    assert 0.1 < by_name["slow"]["fetch_seconds"] < 0.2
    assert decision.startswith("recompute: recomputing (0.01 s) is cheaper")


def test_cache_show_command_prints_the_decision(isolated_nrt_dirs):
    element = Product(n=3)
    element.get(cache=Cache.open())
    result = CliRunner().invoke(main, ["cache", "show", element.signature[:10]])
    assert result.exit_code == 0, result.output
    assert "tier       local    has it" in result.output
    assert "lookup     fetch from local" in result.output


def test_a_read_only_archive_directory_from_the_environment(
    isolated_nrt_dirs, tmp_path, monkeypatch
):
    monkeypatch.setenv("NRT_CACHE_ARCHIVE", str(tmp_path / "archive"))
    cache = Cache.open()
    assert [(t.name, t.read_only) for t in cache.tiers] == [("local", False), ("archive", True)]
    element = Product(n=5)
    element.get(cache=cache)
    LocalTier(tmp_path / "archive").put(cache.local.get(element.signature))
    result = CliRunner().invoke(main, ["cache", "show", element.signature[:10]])
    assert result.exit_code == 0, result.output
    assert "tier       archive  has it" in result.output and "read-only" in result.output
