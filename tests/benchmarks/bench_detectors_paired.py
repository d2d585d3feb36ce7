"""nrt against astropy's bayesian_blocks burst by burst, pooled over injection seeds.

    .venv/bin/python tests/benchmarks/bench_detectors_paired.py [--seeds 2000,3000,4000,5000]
        [--kind short] [--inject 40] [--bb-days 6] [--bb-cache FILE] [--processes 2]

``bench_detectors.py`` gives each method's fluence at 50% and 90% efficiency for one
injection seed; differences of a few % between methods are within one seed's noise
(+-2-3% from which bursts were drawn). Both methods see the same bursts, though, so
their *difference* is far better measured than either fluence: this script runs nrt
and ``bayesian_blocks`` (same data, same criterion and segments as
``bench_detectors.py``) on the bursts of several seeds, fits both efficiency curves
on all of them, and bootstraps the ratio nrt / bayesian_blocks by resampling bursts
(each resampled burst keeps both methods' outcomes). It also lists the bursts only
one of them found (seed, index, fluence), to look at one by one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import bench_detectors as bench


def _ratio(fl: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = bench.fluence_fit(fl, a), bench.fluence_fit(fl, b)
    return np.array([fa[0] / fb[0], fa[1] / fb[1]])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="2000,3000,4000,5000", help="injection seeds")
    ap.add_argument("--kind", default="short", choices=sorted(bench.KINDS))
    ap.add_argument("--inject", type=int, default=40, help="bursts per fluence and seed")
    ap.add_argument("--bb-days", type=int, default=6, help="days for bayesian_blocks' FAR")
    ap.add_argument("--bb-cache", help="as bench_detectors.py --bb-cache")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--resamples", type=int, default=400)
    args = ap.parse_args()

    p0 = bench.BB_SEGMENT / bench.DAY
    maxima = bench.bb_background_maxima(p0, args.bb_days, args.processes, args.bb_cache)
    criterion = float(np.sort(maxima)[::-1][args.bb_days - 1])
    print(f"bayesian_blocks criterion for 1/day on {args.bb_days} days: {criterion:.2f} sigma")

    fl, nrt, bb, where = [], [], [], []
    print("| seed | nrt 50% / 90% | bayesian_blocks 50% / 90% | only nrt | only bb |")
    print("|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        inj = bench.injected(args.kind, args.inject, seed + len(args.kind))
        n = bench.efficiency(inj, bench.nrt_times(inj.t, inj.counts))
        b = bench.bb_hits(inj, p0, criterion, args.processes)
        fn, fb = bench.fluence_fit(inj.fluence, n), bench.fluence_fit(inj.fluence, b)
        print(
            f"| {seed} | {fn[0]:.0f} / {fn[1]:.0f} | {fb[0]:.0f} / {fb[1]:.0f} | "
            f"{(n & ~b).sum()} | {(b & ~n).sum()} |"
        )
        fl.append(inj.fluence)
        nrt.append(n)
        bb.append(b)
        where += [(seed, i) for i in range(n.size)]
    fl, nrt, bb = np.concatenate(fl), np.concatenate(nrt), np.concatenate(bb)
    fn, fb = bench.fluence_fit(fl, nrt), bench.fluence_fit(fl, bb)
    ratio = _ratio(fl, nrt, bb)
    rng = np.random.default_rng(0)
    boot = np.array(
        [_ratio(fl[i], nrt[i], bb[i]) for i in rng.integers(0, fl.size, (args.resamples, fl.size))]
    )
    lo, hi = np.percentile(boot, [5, 95], axis=0)
    print(
        f"\npooled over {fl.size} {args.kind} bursts: nrt {fn[0]:.0f} / {fn[1]:.0f}, "
        f"bayesian_blocks {fb[0]:.0f} / {fb[1]:.0f} counts at 50% / 90%"
    )
    for level, r, a, c in zip(("50%", "90%"), ratio, lo, hi, strict=True):
        print(f"nrt / bayesian_blocks at {level}: {r:.3f} (bootstrap 90% interval {a:.3f}-{c:.3f})")
    for name, only in (("nrt", nrt & ~bb), ("bayesian_blocks", bb & ~nrt)):
        found = [f"{where[i][0]}#{where[i][1]} ({fl[i]:.0f})" for i in np.flatnonzero(only)]
        print(f"only {name} ({len(found)}): {', '.join(found)}")


if __name__ == "__main__":
    main()
