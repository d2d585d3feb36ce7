"""A real Dask LocalCluster (2 worker processes) shared by the reprocessing tests."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="package")
def side_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Run-log, kill-marker and fake-iRODS directories, in the environment before workers
    start."""
    base = tmp_path_factory.mktemp("reprocess-side")
    dirs = {"runlog": base / "runlog", "kill": base / "kill", "irods": base / "irods-zone"}
    for d in dirs.values():
        d.mkdir()
    env = {
        "NRT_TEST_RUNLOG": str(dirs["runlog"]),
        "NRT_TEST_KILL": str(dirs["kill"]),
        # Workers reach the in-repo iRODS fake (on disk, shared by processes) through this.
        "NRT_FAKE_IRODS_ROOT": str(dirs["irods"]),
        "NRT_IRODS_SESSION_FACTORY": "tests.support.fake_irods:session_from_environment",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield dirs
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="package")
def cluster(side_dirs: dict[str, Path]):
    from nrt.executors.dask import local_cluster

    with local_cluster(2, silence_logs=40) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=30)
        yield client


def runs(runlog: Path, what: str = "end") -> Counter:
    """(element, signature) -> how many times main() reached `what`, across processes."""
    found: Counter = Counter()
    for path in runlog.glob("*.log"):
        for line in path.read_text().splitlines():
            kind, name, signature, _pid = line.split()
            if kind == what:
                found[(name, signature)] += 1
    return found
