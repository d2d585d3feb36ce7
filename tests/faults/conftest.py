"""Fixtures of the fault tests: shared telemetry, and how hard to push.

`make test` runs short versions of some; `make faults` runs all of them, long,
through the environment: ``NRT_FAULT_OUTAGE`` (seconds the broker stays away,
default 3; 60 in `make faults`), ``NRT_FAULT_KILLS`` (SIGKILLs during a feed,
default 2; 50 in `make faults`) and ``NRT_FAULT_LONG=1`` (also the tests in
``LONG_ONLY``, left out of `make test` to keep it under 90 s: each fault test
runs a daemon process or more, about 4 s to start each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.daemon.harness import simulated

LONG_ONLY = {
    "test_network_cut_reset_then_blackhole",
    "test_cache_disk_full_then_space_returns",
    "test_file_size_limit_then_lifted",
    "test_cache_payloads_and_index_corrupted",
    "test_clock_jump_and_a_pointing_that_never_closes",
}


def pytest_collection_modifyitems(config, items):
    """Without NRT_FAULT_LONG, leave the LONG_ONLY fault tests to `make faults` (deselected,
    and reported as such by pytest; not skipped)."""
    if os.environ.get("NRT_FAULT_LONG"):
        return
    drop = [i for i in items if i.nodeid.startswith("tests/faults/") and i.name in LONG_ONLY]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


@dataclass(frozen=True)
class FaultSettings:
    outage: float
    kills: int
    seed: int


@pytest.fixture(scope="session")
def fault() -> FaultSettings:
    return FaultSettings(
        outage=float(os.environ.get("NRT_FAULT_OUTAGE", "3")),
        kills=int(os.environ.get("NRT_FAULT_KILLS", "2")),
        seed=int(os.environ.get("NRT_FAULT_SEED", "20261124")),
    )


@pytest.fixture(scope="session")
def telemetry(tmp_path_factory):
    """Simulated telemetry shared by every fault test (read only: tests copy it)."""
    out = tmp_path_factory.mktemp("sim")
    return out, simulated(out)


@pytest.fixture(scope="session")
def reference(tmp_path_factory, telemetry):
    """An uninterrupted run on its own broker: (directory, Outcome) to compare faulty runs with."""
    from tests.faults.scenario import run_through
    from tests.support.mosquitto import Mosquitto

    out = tmp_path_factory.mktemp("reference")
    broker = Mosquitto(workdir=out / "mosquitto").start()
    try:
        return out, run_through(out, telemetry, broker.url)
    finally:
        broker.stop()
