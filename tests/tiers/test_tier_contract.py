"""The contract every cache tier keeps (DESIGN.md section 4), run against each store."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from astropy.table import Table

import nrt as da
from nrt import products
from nrt.cache import Cache, Entry, Index, LocalTier, MemoryTier
from nrt.cache.local import CacheWriteError


class Spectrum(da.Element):
    cached = True
    version = "v3"
    pointing = "012300010010"
    scale = 1.0

    def main(self) -> None:
        self.counts = np.arange(1000, dtype=np.float64) * self.scale
        self.table = Table({"e": np.arange(5.0), "n": np.arange(5)})
        self.label = "ok"


def fresh_entry(scale: float = 1.0, big: bool = False) -> Entry:
    element = Spectrum(scale=scale)
    outputs = element._run_main()
    if big:
        outputs["counts"] = np.random.default_rng(1).random(300_000)  # 2.4 MB
    return Entry(Cache.manifest_for(element, run_seconds=2.5), outputs=outputs)


def test_round_trip_keeps_checksums_and_outputs(store):
    entry = fresh_entry()
    sig = entry.signature
    assert not store.tier.has(sig)
    assert store.tier.get(sig) is None
    store.tier.put(entry)
    assert store.tier.has(sig)
    got = store.tier.get(sig)
    assert got.signature == sig
    assert got.manifest["files"] == entry.manifest["files"]
    outputs = products.read_outputs(got.directory, got.manifest["outputs"])
    np.testing.assert_array_equal(outputs["counts"], np.arange(1000.0))
    assert list(outputs["table"]["n"]) == [0, 1, 2, 3, 4]
    assert outputs["label"] == "ok"


def test_entry_moves_between_tiers_unchanged(store, tmp_path):
    source = LocalTier(tmp_path / "elsewhere")
    entry = fresh_entry(scale=2.0)
    source.put(entry)
    store.tier.put(source.get(entry.signature))
    got = store.tier.get(entry.signature)
    assert got.manifest["files"] == source.get(entry.signature).manifest["files"]


def test_second_put_and_concurrent_writers_both_succeed(store):
    entry = fresh_entry(scale=3.0)
    errors = []

    def write():
        try:
            store.tier.put(fresh_entry(scale=3.0))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.tier.put(entry)  # already there: returns without writing
    assert errors == []
    got = store.tier.get(entry.signature)
    outputs = products.read_outputs(got.directory, got.manifest["outputs"])
    np.testing.assert_array_equal(outputs["counts"], np.arange(1000.0) * 3.0)


def test_negative_result_round_trip(store):
    element = Spectrum(scale=4.0)
    manifest = Cache.manifest_for(element, 0.1)
    manifest.update(status="failed", error="too few counts", expires=1e12, outputs={}, files={})
    store.tier.put(Entry(manifest, outputs={}))
    got = store.tier.get(element.signature)
    assert got.failed and got.manifest["error"] == "too few counts"


def test_damaged_payload_is_detected(store):
    entry = fresh_entry(scale=5.0)
    store.tier.put(entry)
    name = next(n for n in entry.manifest["files"] if n.endswith(".npy"))
    store.corrupt(entry.signature, name)
    with pytest.raises(products.CorruptProduct, match=name.split(".")[0]):
        store.tier.get(entry.signature)


def test_delete(store):
    entry = fresh_entry(scale=6.0)
    store.tier.put(entry)
    assert store.tier.delete(entry.signature) is True
    assert not store.tier.has(entry.signature)
    assert store.tier.get(entry.signature) is None
    assert store.tier.delete(entry.signature) is False


def test_read_only_view_reads_but_refuses_writes(store):
    entry = fresh_entry(scale=7.0)
    store.tier.put(entry)
    assert store.read_only.read_only
    assert store.read_only.get(entry.signature).signature == entry.signature
    with pytest.raises(CacheWriteError, match="read-only"):
        store.read_only.put(fresh_entry(scale=8.0))


def test_cost_grows_with_size_and_is_measured(store):
    assert 0 < store.tier.cost(0) < store.tier.cost(10**9)
    entry = fresh_entry(scale=9.0)
    store.tier.put(entry)
    before = store.tier.stats.samples
    store.tier.get(entry.signature)
    assert store.tier.stats.samples > before


def test_chain_finds_result_in_this_tier_and_promotes_it(store, tmp_path):
    local = LocalTier(tmp_path / "chain-local")
    index = Index(tmp_path / "index.db")
    cache = Cache([local, store.tier], index, MemoryTier(), lock_dir=tmp_path / "locks")
    entry = fresh_entry(scale=10.0)
    store.tier.put(entry)
    found = cache.lookup(entry.signature)
    assert found is not None and found.outputs["label"] == "ok"
    assert local.has(entry.signature), "a hit in a slower tier is copied into the local one"
    assert "local" in index.get(entry.signature)["tiers"]


# ------------------------------------------------------------------ iRODS only


def test_irods_avus_and_registered_checksums(irods_store):
    from nrt.cache.irods import sha2_checksum

    tier = irods_store.tier
    entry = fresh_entry(scale=11.0)
    tier.put(entry)
    avus = tier.avus(entry.signature)
    assert avus["element"] == "Spectrum"
    assert avus["version"] == "v3"
    assert avus["pointing"] == "012300010010"
    assert avus["signature"] == entry.signature
    assert tier.find(element="Spectrum", pointing="012300010010") == [entry.signature]
    assert tier.find(element="Nothing") == []
    for name, meta in entry.manifest["files"].items():
        obj = irods_store.session.data_objects.get(f"{tier.path(entry.signature)}/{name}")
        assert obj.checksum == sha2_checksum(meta["sha256"])


def test_irods_large_payloads_use_parallel_transfer(fake_irods_store):
    """The thread count a transfer asked for is only observable in the fake."""
    irods_store = fake_irods_store
    tier = irods_store.tier
    entry = fresh_entry(scale=12.0, big=True)
    tier.put(entry)
    tier.get(entry.signature)
    big = next(n for n, m in entry.manifest["files"].items() if m["size"] > 1 << 20)
    threads = {(op, p.rsplit("/", 1)[1]): n for op, p, n in irods_store.session.transfers}
    assert threads[("put", big)] == tier.threads > 1
    assert threads[("get", big)] == tier.threads
    assert threads[("get", "manifest.json")] <= 1


def test_irods_async_callers_do_not_block_the_loop(irods_store):
    tier = irods_store.tier
    entry = fresh_entry(scale=13.0)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await tier.aput(entry)
        assert await tier.ahas(entry.signature)
        got = await tier.aget(entry.signature)
        assert await tier.adelete(entry.signature)
        task.cancel()
        return got, ticks

    got, ticks = asyncio.run(main())
    assert got.signature == entry.signature
    assert ticks > 3, "the event loop kept running while the tier worked"
