"""A synthetic pointing written once per session (its quick-look takes ~2 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.quicklook import roots_from_files
from nrt import metrics
from tests.quicklook.synth import write_pointing

SOURCE = (1.0, -0.5)  # instrument angles (deg) of the steady source in the clean pointing
ATTITUDE = (83.6, 22.0, 30.0)


@pytest.fixture(scope="session")
def clean_pointing(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    d = tmp_path_factory.mktemp("clean")
    pid = "000100010010"
    return pid, write_pointing(d, pid, duration=1800, source=SOURCE, attitude=ATTITUDE, seed=3)


@pytest.fixture
def clean_roots(clean_pointing):
    pid, files = clean_pointing
    return roots_from_files(files)[pid]


def runs() -> dict[str, float]:
    """Element main() executions so far, by element (from the engine's own counter)."""
    out: dict[str, float] = {}
    for metric in metrics.ELEMENT_RUNS.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                out[s.labels["element"]] = out.get(s.labels["element"], 0) + s.value
    return out


def ran_since(before: dict[str, float]) -> dict[str, int]:
    after = runs()
    return {k: int(v - before.get(k, 0)) for k, v in after.items() if v - before.get(k, 0)}
