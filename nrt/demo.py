"""``nrt demo``: a first look at nrt with no setup.

Until the daemon lands this shows the engine on a small per-pointing graph:
a cold run, a warm run restored by signature, and a version bump of one element
that recomputes exactly what depends on it, with ``nrt cache why`` explaining it.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import click
import numpy as np

import nrt
from nrt.cache import Cache
from nrt.cache.why import explain

RUNS: Counter = Counter()


class Events(nrt.Element):
    """Simulated imager events of one pointing (energies in keV)."""

    cached = True
    pointing = "000000000000"
    n_events = 200_000

    def main(self):
        RUNS["Events"] += 1
        rng = np.random.default_rng(int(self.pointing) % 2**32)
        continuum = 20.0 * (1 + rng.pareto(1.5, self.n_events))
        line = rng.normal(59.3, 2.0, self.n_events // 20)
        self.energy = np.concatenate([continuum, line]).astype(np.float32)


def calibration_class(version: str, gain: float):
    class Calibrated(nrt.Element):
        """Energies after the gain correction."""

        cached = True
        input_events = Events

        def main(self):
            RUNS["Calibrated"] += 1
            self.energy = self.input_events.energy * self.gain

    Calibrated.version = version
    Calibrated.gain = gain
    return Calibrated


class Spectrum(nrt.Element):
    cached = True
    input_events = Events  # replaced by the calibrated events below
    bins = 256

    def main(self):
        RUNS["Spectrum"] += 1
        self.counts, self.edges = np.histogram(self.input_events.energy, self.bins, (15, 271))
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        window = (centres > 45) & (centres < 80)  # around the 59.3 keV calibration line
        self.line_peak_kev = float(centres[window][np.argmax(self.counts[window])])


def graph(pointing: str, calibration):
    events = Events(pointing=pointing)
    return Spectrum(input_events=calibration(input_events=events))


@click.command()
@click.option("--pointings", default=4, show_default=True, help="How many pointings.")
@click.option("--keep", is_flag=True, help="Keep the cache directory and print where it is.")
def demo(pointings: int, keep: bool) -> None:
    """Run a short demonstration (engine only until the daemon lands)."""
    workdir = Path(tempfile.mkdtemp(prefix="nrt-demo-"))
    cache = Cache.open(workdir / "cache", workdir / "state")
    ids = [f"{i:04d}00010010" for i in range(1, pointings + 1)]
    click.echo("nrt demo: the engine on a per-pointing graph Events -> Calibrated -> Spectrum")
    click.echo("(the full daemon demo with telemetry, triggers and alerts replaces this later)\n")

    def step(title: str, calibration) -> list[Spectrum]:
        RUNS.clear()
        t = time.perf_counter()
        results = [graph(p, calibration).get(cache=cache) for p in ids]
        dt = time.perf_counter() - t
        runs = ", ".join(f"{k} x{v}" for k, v in sorted(RUNS.items())) or "nothing"
        click.echo(f"{title:<34} {dt * 1e3:8.1f} ms   ran: {runs}")
        return results

    v1 = calibration_class("v1", 1.0)
    first = step("cold run", v1)
    step("warm run (restored by signature)", v1)
    cache.memory.clear()
    step("warm run from disk", v1)
    v2 = calibration_class("v2", 1.02)
    bumped = step("calibration v2 (gain 1.02)", v2)

    click.echo("\nwhy did the spectrum of the first pointing recompute?")
    for difference in explain(first[0].signature, bumped[0].signature, cache.index.components):
        click.echo(f"  {difference}")
    click.echo(
        f"\nline peak: {first[0].line_peak_kev:.1f} keV (v1) -> {bumped[0].line_peak_kev:.1f} keV (v2)"
    )
    click.echo(f"cache: {cache.stats()['products']} products in {workdir / 'cache'}")
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
