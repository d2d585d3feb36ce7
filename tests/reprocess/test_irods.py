"""iRODS as the shared store of a distributed run (workers keep only a scratch cache).

The zone is the in-repo fake of python-irodsclient (tests/support/fake_irods.py), kept
on disk so the worker processes and the client see the same one; a live iRODS has not
been used here (README says where each ran).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

from nrt.cache import Cache, Index, LocalTier
from nrt.cache.irods import IrodsTier
from nrt.execute import LocalExecutor, run
from nrt.executors.dask import CacheSpec, DaskExecutor
from tests.reprocess.conftest import runs
from tests.reprocess.graph import build
from tests.support.fake_irods import FakeSession


def test_irods_as_the_shared_store(client, side_dirs, tmp_path):
    irods = IrodsTier(
        f"/tempZone/home/rods/{tmp_path.name}",
        session=FakeSession(side_dirs["irods"]),
        spool=tmp_path / "spool",
    )
    client_local = tmp_path / "client-cache"
    cache = Cache(
        [LocalTier(client_local), irods], Index(tmp_path / "index.db"), lock_dir=tmp_path / "locks"
    )
    scratch = tmp_path / "worker-scratch"
    spec = dataclasses.replace(CacheSpec.of(cache), cache_dir=str(scratch), shared_dir=False)
    assert spec.irods_collection == irods.collection
    pointings = ["130000010010", "130000020010"]
    targets = [t for p in pointings for t in build(p)]

    report = DaskExecutor(client, spec).reprocess(targets, cache)
    assert report.errors == {} and report.submitted == 11
    serial = Cache([LocalTier(tmp_path / "serial")], None)
    for target in [t for p in pointings for t in build(p)]:
        run(target, cache=serial, executor=LocalExecutor(max_workers=1))
    cached = {e.signature: e for t in targets for e in t.walk() if type(e).cached}
    for signature, element in cached.items():
        assert irods.has(signature), f"{type(element).__name__} is in iRODS"
        assert json.loads(cache.index.get(signature)["tiers"]) == ["irods"]
        assert not cache.local.has(signature), "the client's own directory was not used"
        assert irods.avus(signature)["element"] == type(element).__name__
        got = irods.get(signature)
        assert got.manifest["files"] == serial.local.read_manifest(signature)["files"]

    assert DaskExecutor(client, spec).reprocess(targets, cache).submitted == 0

    # Wipe the workers' scratch and lose one result: its rerun reads its inputs from iRODS.
    # (A new spec, so workers open a fresh cache: nothing left in their memory either.)
    shutil.rmtree(scratch)
    summary = targets[0]
    irods.delete(summary.signature)
    cache.index.forget(summary.signature)
    before = runs(side_dirs["runlog"])
    fresh = dataclasses.replace(spec, memory_bytes=spec.memory_bytes + 1)
    third = DaskExecutor(client, fresh).reprocess(targets, cache)
    ran = runs(side_dirs["runlog"]) - before
    assert third.errors == {} and third.submitted == 1
    assert dict(ran) == {("Summary", summary.signature): 1}
    for element in summary.inputs.values():
        assert (scratch / element.signature[:2] / element.signature).is_dir(), "fetched"
    assert irods.has(summary.signature)
