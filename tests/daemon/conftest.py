"""Fixtures of the daemon tests."""

import os

import pytest

from nrt import affinity
from tests.daemon.harness import simulated


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory):
    """Simulated telemetry shared by the tests of a module: (directory, truth)."""
    out = tmp_path_factory.mktemp("sim")
    return out, simulated(out)


@pytest.fixture(autouse=True)
def _restore_cpu_affinity():
    """``nrt replay`` and ``nrt demo`` run in this process (CliRunner) keep it on one CPU,
    as a daemon's process is kept ([daemon] cpus); give the next tests every CPU back."""
    before = os.sched_getaffinity(0)
    yield
    if os.sched_getaffinity(0) != before:
        affinity.pin(before)
