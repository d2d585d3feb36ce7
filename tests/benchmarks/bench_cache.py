"""Cache benchmark: nrt vs joblib.Memory vs redun on the same workload (not a pass/fail test).

Workload: P pointings x a chain of 5 elements; each produces an array of SIZE MB
from its input (element 1 from the pointing number). Reported per system:

- cold: wall time of the first run, and its overhead beyond the bare work
  (the same functions called with no caching at all);
- warm: time to get the final product of one pointing again (nrt: from the
  memory tier, and from the disk tier in a fresh chain; first read of an entry
  verifies its sha256, later reads trust the unchanged file);
- rerun: element runs after bumping the version of element 3 (right: 3 x P).

Run: ``make bench`` or ``python tests/benchmarks/bench_cache.py --pointings 200 --mb 10``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

RUNS: Counter = Counter()
SIZE = 10 * 1024 * 1024 // 8  # float64 elements; set from --mb


def first(pointing: int) -> np.ndarray:
    return np.random.default_rng(pointing).random(SIZE)


def step(x: np.ndarray, k: float) -> np.ndarray:
    return x * (1.0 + 1e-3 * k) + k


#: What "version 2" of element 3 computes differently (a real new version changes results).
V3_SHIFT = {"v1": 0.0, "v2": 0.5}


# ---------------------------------------------------------------- bare work


def bare(pointings: list[int]) -> float:
    t = time.perf_counter()
    for p in pointings:
        x = first(p)
        for k in range(2, 6):
            x = step(x, k)
    return time.perf_counter() - t


# ---------------------------------------------------------------- nrt


def nrt_chain(version3: str):
    import nrt

    class N1(nrt.Element):
        cached = True
        pointing = 0

        def main(self):
            RUNS["nrt"] += 1
            self.x = first(self.pointing)

    def make(k: int, upstream, version: str = "v1"):
        class Step(nrt.Element):
            cached = True
            input_a = upstream

            def main(self):
                RUNS["nrt"] += 1
                self.x = step(self.input_a.x, self.k + V3_SHIFT.get(self.version, 0.0))

        Step.version = version
        Step.k = k
        Step.__qualname__ = Step.__name__ = f"N{k}"
        return Step

    n2 = make(2, N1)
    n3 = make(3, n2, version3)
    n4 = make(4, n3)
    n5 = make(5, n4)

    def final(p: int):
        return n5(input_a=n4(input_a=n3(input_a=n2(input_a=N1(pointing=p)))))

    return final


def bench_nrt(pointings: list[int], root: Path) -> dict:
    from nrt.cache import Cache
    from nrt.execute import LocalExecutor

    cache_dir, state_dir = root / "cache", root / "state"
    mem = 4 * len(pointings) * SIZE * 8  # room for the whole run in memory
    cache = Cache.open(cache_dir, state_dir, memory_bytes=mem)
    executor = LocalExecutor()
    final = nrt_chain("v1")
    RUNS.clear()
    t = time.perf_counter()
    for p in pointings:
        final(p).get(cache=cache, executor=executor)
    cold = time.perf_counter() - t
    warm_mem = timed_each(lambda p: final(p).get(cache=cache, executor=executor), pointings)
    disk_cache = Cache.open(cache_dir, state_dir, memory_bytes=0)
    warm_disk_first = timed_each(
        lambda p: final(p).get(cache=disk_cache, executor=executor), pointings
    )
    disk_cache.memory.clear()
    warm_disk = timed_each(lambda p: final(p).get(cache=disk_cache, executor=executor), pointings)
    RUNS.clear()
    bumped = nrt_chain("v2")
    for p in pointings:
        bumped(p).get(cache=cache, executor=executor)
    return {
        "cold": cold,
        "warm": {
            "memory": warm_mem,
            "disk (first read, verified)": warm_disk_first,
            "disk": warm_disk,
        },
        "rerun": RUNS["nrt"],
    }


# ---------------------------------------------------------------- joblib


def bench_joblib(pointings: list[int], root: Path) -> dict:
    from joblib import Memory

    memory = Memory(str(root / "joblib"), verbose=0)

    def build(version3: str):
        def j1(p):
            RUNS["joblib"] += 1
            return first(p)

        def j2(x):
            RUNS["joblib"] += 1
            return step(x, 2)

        # joblib has no version: a changed default argument is its equivalent.
        def j3(x, _version=version3):
            RUNS["joblib"] += 1
            return step(x, 3 + V3_SHIFT[_version])

        def j4(x):
            RUNS["joblib"] += 1
            return step(x, 4)

        def j5(x):
            RUNS["joblib"] += 1
            return step(x, 5)

        cached = [memory.cache(f) for f in (j1, j2, j3, j4, j5)]

        def final(p):
            x = cached[0](p)
            for f in cached[1:]:
                x = f(x)
            return x

        return final

    final = build("v1")
    RUNS.clear()
    t = time.perf_counter()
    for p in pointings:
        final(p)
    cold = time.perf_counter() - t
    warm = timed_each(final, pointings)
    RUNS.clear()
    bumped = build("v2")
    for p in pointings:
        bumped(p)
    return {"cold": cold, "warm": {"disk": warm}, "rerun": RUNS["joblib"]}


# ---------------------------------------------------------------- redun


def bench_redun(pointings: list[int], root: Path) -> dict:
    from redun import Scheduler, task
    from redun.config import Config

    def build(version3: str):
        @task(namespace="bench", version="1", cache=True)
        def r1(p: int):
            RUNS["redun"] += 1
            return first(p)

        @task(namespace="bench", version="1")
        def r2(x):
            RUNS["redun"] += 1
            return step(x, 2)

        @task(namespace="bench", version=version3)
        def r3(x):
            RUNS["redun"] += 1
            return step(x, 3 + V3_SHIFT[f"v{version3}"])

        @task(namespace="bench", version="1")
        def r4(x):
            RUNS["redun"] += 1
            return step(x, 4)

        @task(namespace="bench", version="1")
        def r5(x):
            RUNS["redun"] += 1
            return step(x, 5)

        return lambda p: r5(r4(r3(r2(r1(p)))))

    config = Config({"backend": {"db_uri": f"sqlite:///{root / 'redun.db'}"}})
    scheduler = Scheduler(config=config)
    scheduler.load()
    final = build("1")
    RUNS.clear()
    t = time.perf_counter()
    for p in pointings:
        scheduler.run(final(p))
    cold = time.perf_counter() - t
    warm = timed_each(lambda p: scheduler.run(final(p)), pointings)
    RUNS.clear()
    bumped = build("2")
    for p in pointings:
        scheduler.run(bumped(p))
    return {"cold": cold, "warm": {"disk": warm}, "rerun": RUNS["redun"]}


# ---------------------------------------------------------------- report


def timed_each(fn, pointings: list[int]) -> float:
    """Median seconds per pointing."""
    times = []
    for p in pointings:
        t = time.perf_counter()
        fn(p)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pointings", type=int, default=200)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--systems", default="nrt,joblib,redun")
    parser.add_argument(
        "--workdir", default=None, help="where to put the caches (default: a temp dir)"
    )
    args = parser.parse_args()
    SIZE = int(args.mb * 1024 * 1024 // 8)
    pointings = list(range(args.pointings))
    logging_quiet()
    work = bare(pointings)
    print(
        f"workload: {args.pointings} pointings x 5 elements x {args.mb:g} MB; bare work {work:.1f} s"
    )
    results = {}
    for name in args.systems.split(","):
        root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=args.workdir))
        try:
            results[name] = {"nrt": bench_nrt, "joblib": bench_joblib, "redun": bench_redun}[name](
                pointings, root
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)
            gc.collect()
        r = results[name]
        print(
            f"  {name}: cold {r['cold']:.1f} s, warm {r['warm']}, rerun {r['rerun']}",
            file=sys.stderr,
        )

    right = 3 * args.pointings
    print()
    print(
        f"{'system':<8} {'cold s':>8} {'overhead/elem ms':>17} {'warm lookup':<72} {'runs after v3 bump'}"
    )
    n_elements = 5 * args.pointings
    for name, r in results.items():
        overhead = (r["cold"] - work) / n_elements * 1e3
        warm = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r["warm"].items())
        verdict = "right" if r["rerun"] == right else f"WRONG (expected {right})"
        print(f"{name:<8} {r['cold']:>8.1f} {overhead:>17.1f} {warm:<72} {r['rerun']:>6} {verdict}")
    if "nrt" in results:
        ours = results["nrt"]["warm"]
        for peer in ("joblib", "redun"):
            if peer in results:
                theirs = results[peer]["warm"]["disk"]
                print(
                    f"warm lookup speed-up vs {peer}: memory {theirs / ours['memory']:.0f}x, "
                    f"disk {theirs / ours['disk']:.0f}x, "
                    f"disk first read {theirs / ours['disk (first read, verified)']:.1f}x"
                )


def logging_quiet() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    for name in ("redun",):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


if __name__ == "__main__":
    main()
