"""Quick-look benchmark: one 1-hour pointing at the simulator's default ISGRI rate.

Measured (wall time, this machine; each phase with a fresh cache chain over the same
directories, as a restarted daemon would see it):

- read: reading and joining the pointing's ISGRI, ACS and HK chunks (``TelemetryFiles``),
  the floor any analysis pays;
- cold: the whole graph (line fits, calibration, spectrum, light curves, detector and sky
  images, ACS summary, six checks), plus writing the FITS products;
- warm: the same pointing again (the target restored from the disk cache, then the
  products restored to write the FITS files);
- bump: after bumping ``EnergyCalibration.version`` (calibration and what is below it
  recompute, the rest is restored);
- peak memory: tracemalloc peak of a separate cold run (numpy buffers included; not
  timed, tracing slows allocation) and the process's maximum resident set.

Run: ``python tests/benchmarks/bench_quicklook.py [--minutes 60] [--chunk 5]``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detectors.quicklook import build, roots_from_files, run_quicklook
from detectors.quicklook.calibration import EnergyCalibration
from nrt import metrics
from nrt.cache import Cache
from nrt.telemetry import simulator


def runs() -> float:
    return sum(
        s.value
        for m in metrics.ELEMENT_RUNS.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )


def element_seconds() -> dict[str, float]:
    return {
        s.labels["element"]: s.value
        for m in metrics.ELEMENT_RUN_SECONDS.collect()
        for s in m.samples
        if s.name.endswith("_sum")
    }


def long_pointing(minutes: float) -> tuple[int, dict]:
    """A seed whose first pointing lasts about `minutes` (the schedule is random)."""
    start = simulator.DEFAULT_START
    orbit = simulator.default_orbit(start)
    best = None
    for seed in range(200):
        p = simulator.plan_pointings(seed, start, start + 2 * 3600 * minutes / 60, orbit)[0]
        length = p.tstop - p.tstart
        if best is None or abs(length - 60 * minutes) < abs(best[1] - 60 * minutes):
            best = (seed, length, p)
    return best[0], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument(
        "--chunk", type=float, default=simulator.CHUNK_SECONDS, help="chunk length, s"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-quicklook-"))
    try:
        seed, pointing = long_pointing(args.minutes)
        hours = (pointing.tstop - simulator.DEFAULT_START) / 3600 + 0.01
        t = time.perf_counter()
        simulator.simulate(work / "tm", hours=hours, seed=seed, chunk_seconds=args.chunk)
        sim_s = time.perf_counter() - t
        files = sorted((work / "tm").glob(f"*_{pointing.id}_*.fits"))
        roots = roots_from_files(files)[pointing.id]

        def cache() -> Cache:
            return Cache.open(work / "cache", work / "state")

        t = time.perf_counter()
        for kind in ("isgri", "acs", "hk"):
            roots[kind].main()
        read_s = time.perf_counter() - t
        nevents = len(roots["isgri"].columns["TIME"])
        roots = roots_from_files(files)[pointing.id]  # fresh roots: nothing kept from the read

        before = runs()
        t = time.perf_counter()
        graph = run_quicklook(build(roots), cache(), outdir=work / "out-cold")
        cold_s = time.perf_counter() - t
        cold_runs = runs() - before

        before = runs()
        t = time.perf_counter()
        run_quicklook(
            build(roots_from_files(files)[pointing.id]), cache(), outdir=work / "out-warm"
        )
        warm_s = time.perf_counter() - t
        warm_runs = runs() - before

        EnergyCalibration.version = "bench-bump"
        before = runs()
        t = time.perf_counter()
        run_quicklook(
            build(roots_from_files(files)[pointing.id]), cache(), outdir=work / "out-bump"
        )
        bump_s = time.perf_counter() - t
        bump_runs = runs() - before
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        # peak memory of a cold run, measured apart (tracemalloc slows allocation down)
        tracemalloc.start()
        run_quicklook(
            build(roots_from_files(files)[pointing.id]),
            Cache.open(work / "cache-mem", work / "state-mem"),
            outdir=work / "out-mem",
        )
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

        print(
            f"pointing {pointing.id}: {pointing.tstop - pointing.tstart:.0f} s, {nevents} ISGRI events "
            f"({nevents / (pointing.tstop - pointing.tstart):.0f}/s), {len(files)} chunk files "
            f"of {args.chunk:g} s; simulated in {sim_s:.1f} s; status {graph.target.status}"
        )
        print(f"{'phase':<34}{'seconds':>10}{'x read':>9}{'element runs':>14}")
        rows = [
            ("read telemetry (floor)", read_s, None),
            ("cold quick-look + FITS", cold_s, cold_runs),
            ("warm (cached) + FITS", warm_s, warm_runs),
            ("after calibration bump + FITS", bump_s, bump_runs),
        ]
        for name, seconds, n in rows:
            print(
                f"{name:<34}{seconds:>10.2f}{seconds / read_s:>9.2f}{'' if n is None else int(n):>14}"
            )
        print(f"warm / cold = {warm_s / cold_s:.3f}; bump / cold = {bump_s / cold_s:.3f}")
        print(
            "element main() time summed over all runs above and the traced one (s): "
            + ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(element_seconds().items(), key=lambda kv: -kv[1])
            )
        )
        print(f"peak traced memory (cold) {peak / 2**20:.0f} MiB; max RSS {maxrss / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
