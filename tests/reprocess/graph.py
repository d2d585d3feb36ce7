"""A small per-pointing graph standing in for the quick-look graph in the reprocessing
tests and benchmark (importable, so Dask workers load the same classes).

    Calibration (shared by every pointing)
    Events(pointing) -> Background (cached = False) -> Spectrum <- Calibration
                     -> LightCurve
    LightCurve + Spectrum -> Summary

Every ``main()`` appends "start|end <Element> <signature> <pid>" to a file in
``$NRT_TEST_RUNLOG`` (a directory; one file per process) so tests can count runs
across worker processes. ``Slow`` kills nothing itself: when ``$NRT_TEST_KILL``
names a directory without a ``marker`` file, its first run writes its pid there
and waits, so the test can SIGKILL that worker mid-task.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path

import numpy as np

import nrt as da

LAUNCH = dt.datetime(2002, 10, 17, tzinfo=dt.UTC)


def log_run(element: da.Element, what: str) -> None:
    folder = os.environ.get("NRT_TEST_RUNLOG")
    if folder:
        line = f"{what} {type(element).__name__} {element.signature} {os.getpid()}\n"
        with open(Path(folder) / f"{os.getpid()}.log", "a") as f:
            f.write(line)


def burn(x: np.ndarray, iterations: int) -> np.ndarray:
    """Deterministic single-threaded CPU work (FFT round trips)."""
    for _ in range(iterations):
        x = np.fft.irfft(np.fft.rfft(x), n=x.size) * 0.999 + 1e-3
    return x


class Calibration(da.Element):
    cached = True
    version = "v1"
    gain = 1.02
    hash_includes = (log_run,)

    def main(self) -> None:
        log_run(self, "start")
        self.channels = np.linspace(15.0, 1000.0, 256) * self.gain
        log_run(self, "end")


class Events(da.Element):
    cached = True
    version = "v1"
    pointing = "000000000000"
    n = 20000
    iterations = 0
    hash_includes = (log_run, burn)

    def main(self) -> None:
        log_run(self, "start")
        seed = int(hashlib.sha256(self.pointing.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        self.energy = burn(rng.exponential(80.0, self.n) + 15.0, self.iterations)
        self.time = np.sort(rng.uniform(0.0, 3600.0, self.n))
        log_run(self, "end")


class Background(da.Element):
    """Not cached: travels to Spectrum as a Dask result, never stored."""

    cached = False
    input_events = Events
    hash_includes = (log_run,)

    def main(self) -> None:
        log_run(self, "start")
        self.level = float(np.median(self.input_events.energy))
        log_run(self, "end")


class LightCurve(da.Element):
    cached = True
    input_events = Events
    binsize = 10.0
    iterations = 0
    hash_includes = (log_run, burn)

    def main(self) -> None:
        log_run(self, "start")
        edges = np.arange(0.0, 3600.0 + self.binsize, self.binsize)
        counts, _ = np.histogram(self.input_events.time, edges)
        self.counts = burn(counts.astype(np.float64), self.iterations)
        log_run(self, "end")


class Spectrum(da.Element):
    cached = True
    input_events = Events
    input_background = Background
    input_calibration = Calibration
    iterations = 0
    hash_includes = (log_run, burn)

    def main(self) -> None:
        log_run(self, "start")
        counts, _ = np.histogram(self.input_events.energy, self.input_calibration.channels)
        level = self.input_background.level
        self.counts = burn(counts.astype(np.float64) - level / 100.0, self.iterations)
        log_run(self, "end")


class Summary(da.Element):
    cached = True
    input_lightcurve = LightCurve
    input_spectrum = Spectrum
    hash_includes = (log_run,)

    def main(self) -> None:
        log_run(self, "start")
        self.peak_rate = float(self.input_lightcurve.counts.max())
        self.total = float(self.input_spectrum.counts.sum())
        self.report = {"pointing": self.input_lightcurve.input_events.pointing}
        log_run(self, "end")


class Slow(da.Element):
    cached = True
    input_events = Events
    hash_includes = (log_run,)

    def main(self) -> None:
        log_run(self, "start")
        folder = os.environ.get("NRT_TEST_KILL")
        if folder and not (Path(folder) / "marker").exists():
            (Path(folder) / "marker.tmp").write_text(str(os.getpid()))
            os.replace(Path(folder) / "marker.tmp", Path(folder) / "marker")
            time.sleep(60)  # the test kills this process meanwhile
        self.mean = float(self.input_events.energy.mean())
        log_run(self, "end")


class Broken(da.Element):
    """A bug: raises an unexpected exception (never cached)."""

    cached = True
    input_events = Events

    def main(self) -> None:
        raise ValueError(f"bad channel in {self.input_events.pointing}")


class Empty(da.Element):
    """An expected failure: too few counts (cached as a negative result)."""

    cached = True
    input_events = Events

    def main(self) -> None:
        raise da.AnalysisException("too few counts")


class UsesBoth(da.Element):
    cached = True
    input_broken = Broken
    input_empty = Empty

    def main(self) -> None:
        self.never = True


def build(pointing: str, iterations: int = 0, slow: bool = False) -> list[da.Element]:
    """The graph of one pointing; `iterations` scales the CPU work of each element."""
    events = Events(pointing=pointing, iterations=iterations)
    lightcurve = LightCurve(input_events=events, iterations=iterations)
    spectrum = Spectrum(
        input_events=events,
        input_background=Background(input_events=events),
        iterations=iterations,
    )
    targets: list[da.Element] = [Summary(input_lightcurve=lightcurve, input_spectrum=spectrum)]
    if slow:
        targets.append(Slow(input_events=events))
    return targets


def pointing_graph(pointing: str) -> list[da.Element]:
    """The builder ``nrt reprocess --graph tests.reprocess.graph:pointing_graph`` uses."""
    return build(pointing)


def pointings_between(start: dt.datetime, stop: dt.datetime) -> list[str]:
    """Four pointings a day, ids ``RRRRPPPP0010`` (revolution of 3 days, pointing)."""
    found = []
    quarter = dt.timedelta(hours=6)
    t = LAUNCH + ((start - LAUNCH) // quarter) * quarter
    while t < stop:
        if t >= start:
            n = int((t - LAUNCH) / quarter)
            found.append(f"{n // 12:04d}{n % 12:04d}0010")
        t += quarter
    return found


def broken_graph(pointing: str) -> list[da.Element]:
    """A builder whose graph has a bug (for the command's exit status)."""
    return [Broken(input_events=Events(pointing=pointing))]
