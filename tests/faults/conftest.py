"""Fixtures of the fault tests: shared telemetry, and how hard to push.

`make test` runs short versions; `make faults` sets the long ones through the
environment: ``NRT_FAULT_OUTAGE`` (seconds the broker stays away, default 3;
60 in `make faults`) and ``NRT_FAULT_KILLS`` (SIGKILLs during a feed, default 3;
50 in `make faults`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.daemon.harness import simulated


@dataclass(frozen=True)
class FaultSettings:
    outage: float
    kills: int
    seed: int


@pytest.fixture(scope="session")
def fault() -> FaultSettings:
    return FaultSettings(
        outage=float(os.environ.get("NRT_FAULT_OUTAGE", "3")),
        kills=int(os.environ.get("NRT_FAULT_KILLS", "3")),
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
