"""Fixtures of the daemon tests."""

import pytest

from tests.daemon.harness import simulated


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory):
    """Simulated telemetry shared by the tests of a module: (directory, truth)."""
    out = tmp_path_factory.mktemp("sim")
    return out, simulated(out)
