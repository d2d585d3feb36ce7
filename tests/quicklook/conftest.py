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


#: Anomalies placed inside known pointings of seed 7 (offsets from the start, s):
#: gain jump in the 2nd pointing (2090-4110), hot pixel in the 3rd (4306-7763), HK
#: excursion (1200 s) inside the 4th (7908-10800).
ANOMALIES = "gain_jump@3000,hot_pixel@5000,hk_excursion@8000"


def simulate_and_run(directory: Path, anomalies: str | None, seed: int, hours: float):
    """Simulate, then run the quick-look over every pointing as the daemon would, in order,
    each pointing's drift measured from the previous one's line positions."""
    from detectors.quicklook import build, run_quicklook
    from detectors.quicklook.graph import reference_from
    from nrt.cache import Cache
    from nrt.telemetry.simulator import simulate

    truth = simulate(directory, hours=hours, seed=seed, chunk_seconds=60.0, anomalies=anomalies)
    roots = roots_from_files(sorted(directory.glob("*.fits")))
    cache = Cache.open(directory / "cache", directory / "state")
    graphs, reference = [], None
    for p in truth["pointings"]:
        graph = run_quicklook(build(roots[p["id"]], reference=reference), cache, publish=True)
        reference = reference_from(graph)
        graphs.append(graph)
    return truth, graphs


@pytest.fixture(scope="session")
def simulated_anomalies(tmp_path_factory):
    return simulate_and_run(tmp_path_factory.mktemp("sim-anomalies"), ANOMALIES, 7, 3.0)


@pytest.fixture(scope="session")
def simulated_clean(tmp_path_factory):
    return simulate_and_run(tmp_path_factory.mktemp("sim-clean"), None, 8, 2.0)
