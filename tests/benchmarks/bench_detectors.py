"""Burst-trigger sensitivity and speed: nrt vs the optimal filter and two peers.

    .venv/bin/python tests/benchmarks/bench_detectors.py [--days 10] [--inject 40] [--bb-days 10]
        [--processes 2] [--bb-cache FILE] [--seed 2000]

Background: simulated SPI-ACS-like 50 ms counts (``detectors.simulation``:
9e4 count/s, scatter 1.2x Poisson, slow orbital trend, single-bin cosmic-ray
spikes). Every method gets one threshold for a false-alarm rate of 1 per day:

* nrt: the threshold comes from the trials factor in ``detectors.calibration``
  (not tuned here); the script counts its false triggers on ``--days`` days.
* optimal matched filter (the physical limit): knows the true pulse shape, the
  true background rate and variance (1.44x Poisson) and where the spikes are;
  slides the template over every bin; its threshold is the value exceeded by
  one cluster per day on the same background days (empirical).
* GBM-like sliding windows (``gdt.core.trigger.SlidingWindowMethod``): Gaussian
  significance over a 17 s background ending 4 s before the window end,
  timescales 50 ms..12.8 s at two phases. gdt's own loop runs ~1e4 bins/s, so
  the sensitivity uses a vectorized copy, checked here against gdt itself on a
  stretch with injected bursts (same triggers); its speed is gdt's own.
  Threshold: empirical, one false trigger per day on the same days.
* astropy ``bayesian_blocks`` (binned counts, ``fitness='events'``) on
  consecutive 100 s segments, ``p0 = 100 s / 1 day`` (``--bb-p0``); a
  candidate is an interior block of more than one bin whose rate exceeds the
  segment's dominant block. Its criterion (excess in sigma) is set like the
  other peers' thresholds: the value exceeded by one segment per day on the
  first ``--bb-days`` background days (``p0`` alone is not a calibrated false
  rate on overdispersed data). It is O(N^2) (~1e4 bins/s), so it runs in
  ``--processes`` processes; ``--bb-cache`` keeps its per-segment maxima. On the
  injected data only the segments that hold a burst are run, at a random
  phase (a burst may straddle two segments, as in a real run).

Bursts: short (Gaussian, FWHM 0.2 s) and long (FRED, ~20 s), injected 3000 s
apart (so that one does not sit in the next one's background or excess-variance
window: up to 2560 s for nrt's 12.8 s windows) at a grid of fluences (total counts); a burst counts as detected if a
trigger falls within [start - 2 s, end + 10 s]. The table gives the fluence at
50% and 90% efficiency from a probit fit in fluence over all bursts (and,
in brackets, by interpolating between the two grid points around the level)
and each method's ratio to the optimal filter, and the speed in bins/s on 3
days of 50 ms data.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np
from scipy.signal import oaconvolve

from detectors.config import TriggerConfig
from detectors.ratetrigger import detect
from detectors.simulation import acs_background, acs_mean, burst_profile

W = 0.05
DAY = 86400.0
SCATTER = 1.2
SPIKE_RATE = 0.002
SPACING = 3000.0
KINDS = {"short": (0.2, np.geomspace(300, 4000, 14)), "long": (20.0, np.geomspace(2500, 32000, 14))}


# ------------------------------------------------------------------ data
def background_day(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t, counts with spikes, counts without spikes, true mean) for one day."""
    t, clean = acs_background(DAY, W, scatter=SCATTER, spike_rate=0.0, seed=seed)
    rng = np.random.default_rng(seed + 10_000)
    spikes = np.zeros_like(clean)
    n = rng.poisson(SPIKE_RATE * DAY)
    np.add.at(spikes, rng.integers(0, t.size, n), rng.exponential(1500.0, n).round())
    return t, clean + spikes, clean, acs_mean(t, W)


@dataclass
class Injected:
    t: np.ndarray
    counts: np.ndarray
    clean: np.ndarray
    mean: np.ndarray
    starts: np.ndarray  # burst start times
    fluence: np.ndarray
    duration: float
    profile: np.ndarray


def injected(kind: str, n_per: int, seed: int) -> Injected:
    duration, grid = KINDS[kind]
    prof = burst_profile(kind, duration, W)
    fl = np.repeat(grid, n_per)
    np.random.default_rng(seed).shuffle(fl)
    seconds = SPACING * (fl.size + 1)
    t, clean = acs_background(seconds, W, scatter=SCATTER, spike_rate=0.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    spikes = np.zeros_like(clean)
    n = rng.poisson(SPIKE_RATE * seconds)
    np.add.at(spikes, rng.integers(0, t.size, n), rng.exponential(1500.0, n).round())
    starts = SPACING * (1 + np.arange(fl.size)) + rng.uniform(0, 1, fl.size)
    burst = np.zeros_like(clean)
    for s, f in zip(starts, fl, strict=True):
        i = int(s / W)
        burst[i : i + prof.size] += rng.poisson(f * prof)
    return Injected(
        t, clean + burst + spikes, clean + burst, acs_mean(t, W), starts, fl, duration, prof
    )


# ------------------------------------------------------------------ methods
def nrt_times(t: np.ndarray, counts: np.ndarray) -> np.ndarray:
    trig = detect(t, W, counts, instrument="SIM", config=TriggerConfig(far_per_day=1.0))
    return np.array([x.time_met for x in trig])


def mf_stat(clean: np.ndarray, mean: np.ndarray, prof: np.ndarray) -> np.ndarray:
    """Matched-filter SNR for a burst starting at each bin (weights = template)."""
    num = oaconvolve(clean - mean, prof[::-1], mode="full")[prof.size - 1 :]
    var = oaconvolve(mean, (prof**2)[::-1], mode="full")[prof.size - 1 :]
    den = np.sqrt(SCATTER**2 * np.clip(var, 1e-9, None))
    return num / den


def clusters(stat: np.ndarray, thr: float, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the maximum, and the maximum, of runs of stat >= thr more than ``gap`` apart."""
    idx = np.flatnonzero(stat >= thr)
    if not idx.size:
        return idx, idx.astype(float)
    cut = np.flatnonzero(np.diff(idx) > gap) + 1
    groups = np.split(idx, cut)
    peaks = np.array([g[np.argmax(stat[g])] for g in groups])
    return peaks, stat[peaks]


BB_SEGMENT = 100.0  # s
GBM_KS = 2 ** np.arange(9)  # 50 ms .. 12.8 s
GBM_BKG, GBM_OFF = 340, 80  # 17 s background ending 4 s before the window end


def gbm_stat(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best significance per window end (index of last bin) and its timescale, gdt's formula."""
    c = np.concatenate(([0.0], np.cumsum(counts)))
    n = counts.size
    best = np.full(n, -np.inf)
    ks = np.zeros(n, int)
    for k in GBM_KS:
        for off in {0, int(k) // 2}:
            stop = np.arange(k + off, n + 1, k)  # window stop index (exclusive)
            stop = stop[stop - GBM_OFF - GBM_BKG >= 0]
            bstop = stop - GBM_OFF
            bkg = c[bstop] - c[bstop - GBM_BKG]
            win = c[stop] - c[stop - k]
            scaled = bkg * k / GBM_BKG
            with np.errstate(divide="ignore", invalid="ignore"):
                sig = (win - scaled) / np.sqrt(scaled)
            better = sig > best[stop - 1]
            best[stop[better] - 1] = sig[better]
            ks[stop[better] - 1] = k
    return best, ks


def gdt_triggers(counts: np.ndarray, threshold: float) -> list[tuple[float, int]]:
    """gdt's own SlidingWindowMethod on 50 ms counts: (trigger time, timescale ms)."""
    from gdt.core.data_primitives import TimeEnergyBins
    from gdt.core.trigger import SlidingWindowMethod, TriggerAlgorithm

    algs, num = {}, 0
    for k in GBM_KS:
        for off in sorted({0, int(k) // 2}):
            num += 1
            algs[num] = TriggerAlgorithm(int(k * 50), int(off * 50), (0, 0), threshold)
    method = SlidingWindowMethod(
        algs, GBM_BKG * 50, GBM_OFF * 50, 50, [0, 1], ["acs"], verbose=False
    )
    t0 = np.arange(counts.size) * W
    data = TimeEnergyBins(counts.reshape(-1, 1), t0, t0 + W, np.full(counts.size, W), [0.0], [1.0])

    class _Phaii:
        pass

    ph = _Phaii()
    ph.data = data
    method.phaiis = [ph]
    return [(round(tr.time, 6), tr.alg.timescale) for tr in method.apply_trigger()]


def bb_blocks(t: np.ndarray, counts: np.ndarray, p0: float) -> tuple[np.ndarray, np.ndarray]:
    """Bayesian blocks of one segment: (start time, excess in sigma) of each candidate block.

    A candidate is an interior block of more than one bin (a single bin is a
    spike, or a half-width end cell) shorter than 90% of the segment; its
    excess is over the segment's dominant (longest) block, with the true
    variance (1.44x Poisson).
    """
    from astropy.stats import bayesian_blocks

    per = counts.size
    tt = t + 0.5 * W
    edges = bayesian_blocks(tt, counts, fitness="events", p0=p0)
    idx = np.searchsorted(tt, edges[1:-1])
    bounds = np.concatenate(([0], idx, [per]))
    sums = np.add.reduceat(counts, bounds[:-1])
    lens = np.diff(bounds)
    base = sums[np.argmax(lens)] / lens[np.argmax(lens)]
    excess = (sums - base * lens) / np.sqrt(SCATTER**2 * base * lens)
    keep = (lens > 1) & (lens < 0.9 * per)
    return tt[bounds[:-1]][keep], excess[keep]


def _bb_segment_max(args: tuple[int, int, float]) -> list[float]:
    """Largest candidate excess of each 100 s segment of one background day (its seed)."""
    seed, n_seg, p0 = args
    t, counts, _, _ = background_day(seed)
    per = int(BB_SEGMENT / W)
    out = []
    for a in range(0, min(n_seg, counts.size // per) * per, per):
        _, ex = bb_blocks(t[a : a + per], counts[a : a + per], p0)
        out.append(float(ex.max()) if ex.size else -np.inf)
    return out


def _bb_hit(job: tuple) -> bool:
    """Whether bayesian_blocks finds the burst starting at ``st`` in these whole segments."""
    t, counts, p0, thr, st, duration = job
    tb = bb_detections(t, counts, p0, thr)
    return bool(np.any((tb >= st - 2) & (tb <= st + 2 * duration + 10)))


def bb_detections(
    t: np.ndarray, counts: np.ndarray, p0: float, excess: float, seg: float = 100.0
) -> np.ndarray:
    """Times of Bayesian-block excesses above ``excess`` sigma on consecutive segments."""
    per = int(seg / W)
    found = []
    for a in range(0, counts.size - per + 1, per):
        st, ex = bb_blocks(t[a : a + per], counts[a : a + per], p0)
        found += st[ex >= excess].tolist()
    return np.array(found)


def bb_hits(inj: Injected, p0: float, excess: float, processes: int) -> np.ndarray:
    """Whether bayesian_blocks finds each injected burst.

    Only the segments that hold a burst are run (O(N^2)): consecutive 100 s segments
    at a random phase, so a burst may straddle two, as in a real run.
    """
    rng = np.random.default_rng(3)
    per = int(BB_SEGMENT / W)
    jobs = []
    for st in inj.starts:
        a = int((st - rng.uniform(0.0, BB_SEGMENT)) / W)
        b = max(int((st + 2 * inj.duration + 10.0) / W), a + per)
        b = a + per * -(-(b - a) // per)  # whole segments
        jobs.append((inj.t[a:b], inj.counts[a:b], p0, excess, st, inj.duration))
    with Pool(max(1, processes)) as pool:
        return np.array(pool.map(_bb_hit, jobs, chunksize=8))


def bb_background_maxima(p0: float, days: int, processes: int, cache: str | None) -> np.ndarray:
    """Per-segment candidate maxima of bayesian_blocks on ``days`` background days."""
    import json
    from pathlib import Path

    key = {"p0": p0, "days": days, "seeds": [1000 + d for d in range(days)]}
    if cache and Path(cache).exists():
        saved = json.loads(Path(cache).read_text())
        if {k: saved.get(k) for k in key} == key:
            return np.array(saved["maxima"], dtype=float)
    jobs = [(1000 + d, int(DAY / BB_SEGMENT), p0) for d in range(days)]
    with Pool(max(1, processes)) as pool:
        maxima = np.concatenate([np.array(m) for m in pool.map(_bb_segment_max, jobs)])
    if cache:
        Path(cache).write_text(json.dumps({**key, "maxima": [float(x) for x in maxima]}))
    return maxima


# ------------------------------------------------------------------ scoring
def efficiency(inj: Injected, times: np.ndarray) -> np.ndarray:
    times = np.sort(times)
    lo = np.searchsorted(times, inj.starts - 2.0)
    hi = np.searchsorted(times, inj.starts + inj.duration * 2 + 10.0)
    return hi > lo


def fluence_at(inj_fl: np.ndarray, hit: np.ndarray, level: float) -> float:
    grid = np.unique(inj_fl)
    eff = np.maximum.accumulate(np.array([hit[inj_fl == g].mean() for g in grid]))
    if eff[-1] < level:
        return float("inf")
    if eff[0] >= level:
        return float(grid[0])
    i = int(np.argmax(eff >= level))
    x0, x1 = np.log(grid[i - 1]), np.log(grid[i])
    f = (level - eff[i - 1]) / (eff[i] - eff[i - 1])
    return float(np.exp(x0 + f * (x1 - x0)))


def fluence_fit(inj_fl: np.ndarray, hit: np.ndarray) -> tuple[float, float]:
    """Fluence at 50% and 90% from a probit fit in fluence (all bursts, maximum likelihood).

    Every method's statistic is close to (fluence x response + unit noise) at these
    signal-to-noise ratios, so its efficiency is ``Phi((F - F50) / s)``; the fit uses
    all bursts, less noisy than interpolating between the two grid points around the
    level. inf if never detected.
    """
    from scipy import optimize, special

    if not hit.any():
        return float("inf"), float("inf")
    x = np.asarray(inj_fl, dtype=float)
    y = hit.astype(float)

    def nll(p: np.ndarray) -> float:
        z = (x - p[0]) / np.exp(p[1])
        return -float(np.sum(y * special.log_ndtr(z) + (1 - y) * special.log_ndtr(-z)))

    f50 = fluence_at(inj_fl, hit, 0.5)
    start = np.array([f50 if np.isfinite(f50) else x.max(), np.log(0.25 * x.mean())])
    p = optimize.minimize(nll, start, method="Nelder-Mead").x
    return float(p[0]), float(p[0] + np.exp(p[1]) * special.ndtri(0.9))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--inject", type=int, default=40, help="bursts per fluence")
    ap.add_argument("--bb-days", type=int, default=10, help="days for bayesian_blocks' FAR")
    ap.add_argument("--processes", type=int, default=2, help="for bayesian_blocks (O(N^2))")
    ap.add_argument(
        "--bb-cache",
        help="JSON file of bayesian_blocks' per-segment maxima on the background days: "
        "read if it matches (p0, days), else computed and written",
    )
    ap.add_argument(
        "--bb-p0", type=float, default=BB_SEGMENT / DAY, help="per segment (default 1/day)"
    )
    ap.add_argument("--bb-only", action="store_true", help="stop after bayesian_blocks' FAR")
    ap.add_argument(
        "--seed", type=int, default=2000, help="injection seed (bursts, their background)"
    )
    args = ap.parse_args()

    print(f"# background: {args.days} days of 50 ms SPI-ACS-like counts")
    nrt_false = 0
    mf_max: dict[str, list[float]] = {k: [] for k in KINDS}
    gbm_max: list[float] = []
    gbm_clean_max: list[float] = []
    for d in range(args.days):
        t, counts, clean, mean = background_day(1000 + d)
        nrt_false += len(nrt_times(t, counts))
        for kind, (dur, _) in KINDS.items():
            prof = burst_profile(kind, dur, W)
            _, m = clusters(mf_stat(clean, mean, prof), 3.0, prof.size)
            mf_max[kind] += list(m)
        best, _ = gbm_stat(counts)
        _, m = clusters(best, 3.0, int(10 / W))
        gbm_max += list(m)
        best, _ = gbm_stat(clean)
        _, m = clusters(best, 3.0, int(10 / W))
        gbm_clean_max += list(m)
    days = args.days

    def at_rate(maxima: list[float]) -> float:
        return float(np.sort(maxima)[::-1][days - 1])  # exceeded by one cluster per day

    mf_thr = {k: at_rate(v) for k, v in mf_max.items()}
    for kind, (dur, _) in KINDS.items():
        # the limit in closed form: template-weighted counts ~ N(F sum p^2, F_1 b sum p^2)
        p2 = float((burst_profile(kind, dur, W) ** 2).sum())
        s = np.sqrt(SCATTER**2 * 9.0e4 * W / p2)
        print(
            f"matched filter, {kind}, aligned with the bins, closed form: 50% at "
            f"{mf_thr[kind] * s:.0f}, 90% at {(mf_thr[kind] + 1.2816) * s:.0f} counts"
        )
    gbm_thr = at_rate(gbm_max)
    gbm_clean_thr = at_rate(gbm_clean_max)
    print(
        f"nrt false triggers: {nrt_false} in {days} days (target {days}; threshold from calibration)"
    )
    print(f"matched filter thresholds (1/day): {mf_thr}")
    print(f"GBM-like threshold (1/day): {gbm_thr:.2f} sigma; without spikes: {gbm_clean_thr:.2f}")

    # gdt itself vs the vectorized copy, on 1500 s with bursts
    inj = injected("short", 1, 77)
    seg = inj.counts[: int(2000 / W)]
    thr_check = 4.5
    ref = gdt_triggers(seg, thr_check)
    best, ks = gbm_stat(seg)
    mine = sorted(
        {(round((i + 1) * W, 6), int(ks[i] * 50)) for i in np.flatnonzero(best > thr_check)}
    )
    ref_set = sorted({(round(a / W) * W, b) for a, b in ref})
    mine_set = sorted({(round(a / W) * W, b) for a, b in mine})
    same = {a for a, _ in ref_set} == {a for a, _ in mine_set}
    print(
        f"gdt check on 2000 s: gdt {len(ref)} window crossings, copy {len(mine)}, same times: {same}"
    )

    # Bayesian blocks: per-segment maxima on the first --bb-days background days
    p0 = args.bb_p0
    bb_max = bb_background_maxima(p0, args.bb_days, args.processes, args.bb_cache)
    bb_thr = float(np.sort(bb_max)[::-1][args.bb_days - 1])  # one segment per day above it
    print(
        f"bayesian_blocks p0={p0:.2e}: {int((bb_max >= 5.0).sum())} false detections at the "
        f"5-sigma block criterion in {args.bb_days} days ({bb_max.size} segments); "
        f"criterion for 1/day: {bb_thr:.2f} sigma"
    )
    if args.bb_only:
        return

    rows = []
    for kind in KINDS:
        inj = injected(kind, args.inject, args.seed + len(kind))
        res = {}
        res["nrt"] = efficiency(inj, nrt_times(inj.t, inj.counts))
        stat = mf_stat(inj.clean, inj.mean, inj.profile)
        s, _ = clusters(stat, mf_thr[kind], inj.profile.size)
        res["optimal"] = efficiency(inj, inj.t[s])
        best, _ = gbm_stat(inj.counts)
        s, _ = clusters(best, gbm_thr, int(10 / W))
        res["gbm-like"] = efficiency(inj, inj.t[s])
        best, _ = gbm_stat(inj.clean)
        s, _ = clusters(best, gbm_clean_thr, int(10 / W))
        res["gbm-like, spikes removed"] = efficiency(inj, inj.t[s])
        res["bayesian_blocks"] = bb_hits(inj, p0, bb_thr, args.processes)
        for name, hit in res.items():
            f50, f90 = fluence_fit(inj.fluence, hit)
            i50, i90 = fluence_at(inj.fluence, hit, 0.5), fluence_at(inj.fluence, hit, 0.9)
            rows.append((kind, name, f50, f90, i50, i90))

    print(
        f"\n{args.inject} bursts per fluence; fluence from a probit fit (in brackets: linear "
        "interpolation between grid points)"
    )
    print("| burst | method | fluence 50% (counts) | fluence 90% | ratio to optimal (50% / 90%) |")
    print("|---|---|---|---|---|")
    for kind in KINDS:
        opt = {r[1]: r for r in rows if r[0] == kind}["optimal"]
        for r in (r for r in rows if r[0] == kind):
            print(
                f"| {kind} | {r[1]} | {r[2]:.0f} ({r[4]:.0f}) | {r[3]:.0f} ({r[5]:.0f}) | "
                f"{r[2] / opt[2]:.2f} / {r[3] / opt[3]:.2f} "
                f"({r[4] / opt[4]:.2f} / {r[5] / opt[5]:.2f}) |"
            )

    # speed on 3 days of 50 ms data
    t3 = np.concatenate([background_day(7000 + d)[0] + d * DAY for d in range(3)])
    c3 = np.concatenate([background_day(7000 + d)[1] for d in range(3)])
    m3 = acs_mean(t3, W)
    speed = {}
    t0 = time.process_time()
    nrt_times(t3, c3)
    speed["nrt"] = c3.size / (time.process_time() - t0)
    t0 = time.process_time()
    for kind, (dur, _) in KINDS.items():
        mf_stat(c3, m3, burst_profile(kind, dur, W))
    speed["optimal (2 templates)"] = c3.size / (time.process_time() - t0)
    t0 = time.process_time()
    gbm_stat(c3)
    speed["gbm-like, vectorized copy"] = c3.size / (time.process_time() - t0)
    sub = c3[: int(600 / W)]
    t0 = time.process_time()
    gdt_triggers(sub, 50.0)
    speed["gbm-like, gdt itself (600 s)"] = sub.size / (time.process_time() - t0)
    sub = int(2000 / W)
    t0 = time.process_time()
    bb_detections(t3[: 5 * sub], c3[: 5 * sub], p0, bb_thr)
    speed["bayesian_blocks (100 s segments)"] = 5 * sub / (time.process_time() - t0)
    print(f"\n| method | bins/s of CPU time (3 days = {c3.size} bins of 50 ms) | ratio to nrt |")
    print("|---|---|---|")
    for name, v in speed.items():
        print(f"| {name} | {v:.3g} | {v / speed['nrt']:.3g} |")


if __name__ == "__main__":
    main()
