"""Cache tiers, index and maintenance, with real files and a real SQLite index."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

import nrt
from nrt import metrics
from nrt.cache import Cache, Entry, LocalTier, MemoryTier
from nrt.cli import main as cli

RUNS: list[str] = []


class Payload(nrt.Element):
    cached = True
    size = 1000
    seed = 0

    def main(self):
        RUNS.append(self.signature)
        self.values = np.random.default_rng(self.seed).normal(size=self.size)


def counter(tier: str, result: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "nrt_cache_requests_total", {"tier": tier, "result": result}
        )
        or 0.0
    )


@pytest.fixture(autouse=True)
def clear_runs():
    RUNS.clear()


def entry_dir(dirs, element) -> os.PathLike:
    return dirs["cache"] / element.signature[:2] / element.signature


def test_corrupt_payload_is_detected_removed_counted_and_recomputed(isolated_nrt_dirs):
    element = Payload().get()
    payload = entry_dir(isolated_nrt_dirs, element) / "values.npy"
    data = bytearray(payload.read_bytes())
    data[-5] ^= 0xFF  # flip bits in the array data, keep the size
    payload.write_bytes(bytes(data))
    before = counter("local", "corrupt")
    again = Payload().get(cache=Cache.open())
    assert counter("local", "corrupt") == before + 1
    assert len(RUNS) == 2, "the corrupt entry must be recomputed"
    np.testing.assert_array_equal(again.values, element.values)
    assert Cache.open().verify()["corrupt"] == []


def test_verify_finds_and_removes_corruption(isolated_nrt_dirs):
    a, b = Payload(seed=1).get(), Payload(seed=2).get()
    (entry_dir(isolated_nrt_dirs, a) / "values.npy").write_bytes(b"garbage")
    result = CliRunner().invoke(cli, ["cache", "verify"])
    assert result.exit_code == 1 and "1 corrupt" in result.output
    result = CliRunner().invoke(cli, ["cache", "verify"])
    assert result.exit_code == 0 and "checked 1 results: 0 corrupt" in result.output
    assert not entry_dir(isolated_nrt_dirs, a).exists() and entry_dir(isolated_nrt_dirs, b).exists()


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_index_is_rebuilt_from_manifests(isolated_nrt_dirs, damage):
    Payload(seed=1).get()
    Payload(seed=2).get()
    index = isolated_nrt_dirs["state"] / "index.db"
    for side in ("", "-wal", "-shm"):
        p = index.with_name(index.name + side)
        if p.exists():
            p.unlink()
    if damage == "garbage":
        index.write_bytes(b"this is not a database" * 100)
    repairs = {"database": "index", "action": "rebuilt"}
    before = metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs)
    cache = Cache.open()
    counted = metrics.REGISTRY.get_sample_value("nrt_state_repairs_total", repairs) - before
    assert counted == (1 if damage == "garbage" else 0), "damage is counted, a missing index not"
    assert cache.stats()["products"] == 2
    assert len(list(cache.index.products())) == 2
    Payload(seed=1).get(cache=cache)
    assert len(RUNS) == 2, "nothing recomputed after the rebuild"


def test_two_writers_of_the_same_signature_both_succeed(tmp_path):
    tier = LocalTier(tmp_path / "c")
    errors = []

    def write():
        try:
            manifest = {"signature": "ab" * 32, "element": "X"}
            tier.put(Entry(manifest, outputs={"v": np.arange(100000)}))
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entry = tier.get("ab" * 32)
    assert entry is not None and not list((tmp_path / "c" / ".tmp").iterdir())


def test_memory_tier_is_bounded_lru():
    tier = MemoryTier(max_bytes=3000)
    for i in range(5):
        tier.put(Entry({"signature": str(i)}, outputs={"v": np.zeros(100)}))  # 800 bytes each
    assert tier.nbytes <= 3000
    assert not tier.has("0") and tier.has("4")
    tier.get("1") if tier.has("1") else None


def test_memory_tier_lets_go_of_what_no_running_work_holds():
    tier = MemoryTier()

    def put(name: str) -> None:
        tier.put(Entry({"signature": name}, outputs={"v": np.zeros(10)}))

    put("shared")
    put("outside")  # not held by anyone: an ordinary LRU entry, untouched
    with tier.hold(["a", "shared"]):
        put("a")
        with tier.hold(["b", "shared"]):
            put("b")
        assert not tier.has("b")  # its only holder is done
        assert tier.has("shared") and tier.has("a")  # still held by the outer work
    assert not tier.has("a") and not tier.has("shared")
    assert tier.has("outside") and tier.nbytes == 80
    with pytest.raises(RuntimeError), tier.hold(["c"]):
        put("c")
        raise RuntimeError("the work failed")
    assert not tier.has("c")  # let go on failure too


def test_gc_by_age_and_size_keeps_the_index_consistent(isolated_nrt_dirs):
    old = Payload(seed=1, size=20000).get()
    cache = Cache.open()
    cache.index.db.execute("UPDATE products SET last_access = ?", [time.time() - 40 * 86400])
    new = [Payload(seed=s, size=20000).get() for s in (2, 3, 4)]
    result = CliRunner().invoke(cli, ["cache", "gc", "--max-age", "30d", "--json"])
    assert result.exit_code == 0, result.output
    assert '"evicted": 1' in result.output
    assert not entry_dir(isolated_nrt_dirs, old).exists()
    result = CliRunner().invoke(cli, ["cache", "gc", "--max-bytes", "200K"])
    assert "evicted 2 results" in result.output
    report = Cache.open().verify()
    assert report["dangling"] == 0 and report["checked"] == 1
    assert sum(entry_dir(isolated_nrt_dirs, e).exists() for e in new) == 1


def test_gc_evicts_cheapest_to_recompute_first(isolated_nrt_dirs):
    cheap, costly = Payload(seed=1).get(), Payload(seed=2).get()
    cache = Cache.open()
    cache.index.db.execute(
        "UPDATE products SET run_seconds = 100 WHERE signature = ?", [costly.signature]
    )
    cache.index.db.execute(
        "UPDATE products SET run_seconds = 0.001 WHERE signature = ?", [cheap.signature]
    )
    cache.gc(max_bytes=9000)
    assert entry_dir(isolated_nrt_dirs, costly).exists()
    assert not entry_dir(isolated_nrt_dirs, cheap).exists()


def test_cli_why_names_the_parameter_and_the_version():
    class Up(nrt.Element):
        cached = True
        gain = 1.0

        def main(self):
            self.v = self.gain

    class Down(nrt.Element):
        cached = True
        input_u = Up

        def main(self):
            self.v = self.input_u.v

    a = Down().get()
    b = Down(input_u=Up(gain=2.5)).get()
    result = CliRunner().invoke(cli, ["cache", "why", a.signature[:10], b.signature[:10]])
    assert result.exit_code == 0, result.output
    assert "input input_u changed" in result.output
    assert "Down.input_u: parameter gain: 1 -> 2.5" in result.output


def test_cli_ls_show_stats():
    p = Payload(seed=9).get()
    runner = CliRunner()
    assert p.signature[:16] in runner.invoke(cli, ["cache", "ls"]).output
    shown = runner.invoke(cli, ["cache", "show", p.signature[:12]])
    assert "element    Payload" in shown.output and "local    has it" in shown.output
    assert "products: 1" in runner.invoke(cli, ["cache", "stats"]).output
    assert runner.invoke(cli, ["cache", "show", "ffffffff"]).exit_code != 0


def test_gc_forgets_components_of_evicted_signatures_beyond_a_bound(isolated_nrt_dirs, monkeypatch):
    """``why`` needs the components of recent signatures; those of long-evicted products
    must not pile up in the index (a daemon computes ~1000 signatures a day)."""
    from nrt.cache import chain

    cache = Cache.open()
    made = [Payload(seed=s, size=10).get(cache=cache) for s in range(6)]
    assert all(cache.index.components(e.signature) for e in made)
    monkeypatch.setattr(chain, "SIGNATURES_KEPT", 2)
    result = cache.gc(max_bytes=1)  # every product evicted: all six are orphans now
    assert result["evicted"] == 6 and result["signatures_forgotten"] == 4
    kept = [e.signature for e in made if cache.index.components(e.signature)]
    assert kept == [e.signature for e in made[-2:]], "the most recent ones are kept"
    # Computed anew: it has a product again, so its components stay.
    again = Payload(seed=0, size=10).get(cache=cache)
    assert cache.gc()["signatures_forgotten"] == 0  # two orphans left, within the bound
    assert cache.index.components(again.signature) is not None
