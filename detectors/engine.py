"""The rate-trigger engine: chunk in, triggers out, with bounded state.

Everything is computed on a global bin index (gaps in time are filled with
invalid bins, so the index stays proportional to time) from running cumulative
sums, which are continued exactly across chunks: a window's numbers do not
depend on how the stream was cut, so streaming and batch give the same
triggers. Per chunk the work is vectorized numpy; only the bins still needed
(background, excess-variance and post windows, open groups) are kept.

Pipeline per chunk:

1. validity: NaN counts, zero/negative exposure and drop-outs (runs of zero
   counts where the background predicts many) are invalid bins;
2. spike veto: a bin far above background whose neighbours are not is a
   cosmic-ray hit, replaced by its background expectation (needs one bin of
   look-ahead);
3. every timescale k (1, 2, 4, ... bins) at ``phases`` offsets: counts over the
   window vs the background rate before it, excess variance measured on the
   residuals of earlier windows of the same k, likelihood-ratio significance;
4. windows above threshold are grouped (overlapping or within ``merge_gap``)
   and each group becomes one trigger (see :mod:`detectors.grouping`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from detectors.config import TriggerConfig
from detectors.grouping import Candidate, Grouper, GroupReport
from detectors.significance import poisson_significance

#: E[min(z^2, 9)] for a standard normal z: undoes the bias of the clipped mean.
_CLIP_BIAS = {9.0: 0.99466}


class _Tail:
    """Named arrays on a global index, trimmed at the front (bounded state).

    Each array lives in a buffer with room at its end, so an append copies only the new
    values, not the whole history (which was about half of the stream thread's time).
    An array handed out by ``[]`` is a view of the buffer and stays valid.
    """

    def __init__(self, names: tuple[str, ...], dtypes: tuple[type, ...], first: float = 0.0):
        self.base = 0
        self._buf: dict[str, np.ndarray] = {}
        self._span: dict[str, list[int]] = {}  # name -> [start, end) in its buffer
        for n, d in zip(names, dtypes, strict=True):
            size = 1 if n.startswith("cum") else 0
            self._buf[n] = np.zeros(_TAIL_ROOM, d)
            if size:
                self._buf[n][0] = first
            self._span[n] = [0, size]

    def append(self, **values: np.ndarray) -> None:
        """Append values; ``cum*`` arrays continue their running sum exactly."""
        for name, arr in values.items():
            buf = self._buf[name]
            start, end = self._span[name]
            n = len(arr)
            if end + n > len(buf):  # move to a buffer with room for as much again
                size = end - start
                grown = np.empty(max(_TAIL_ROOM, 2 * (size + n)), buf.dtype)
                grown[:size] = buf[start:end]
                buf = self._buf[name] = grown
                start, end = 0, size
            buf[end : end + n] = arr
            if name.startswith("cum"):
                tail = buf[(end - 1 if end > start else end + n - 1) : end + n]
                np.cumsum(tail, out=tail)  # sequential: same sums whatever the chunking
            self._span[name] = [start, end + n]

    def __getitem__(self, name: str) -> np.ndarray:
        start, end = self._span[name]
        return self._buf[name][start:end]

    def truncate(self, name: str, length: int) -> None:
        """Keep the first ``length`` values of ``name`` (the next append overwrites the rest)."""
        span = self._span[name]
        span[1] = min(span[1], span[0] + length)

    def trim(self, new_base: int) -> None:
        cut = new_base - self.base
        if cut <= 0:
            return
        for span in self._span.values():
            span[0] = min(span[0] + cut, span[1])
        self.base = new_base


#: Initial room of a ``_Tail`` buffer (values).
_TAIL_ROOM = 1024


@dataclass
class _Scale:
    """Per-timescale state: window length, phase step, background length, residual sums."""

    k: int
    step: int
    bkg: int
    core: tuple[int, int]  # (offset, length) of the window's full-weight bins
    rest: float  # weight of its other bins (1: a boxcar)
    next_window: int
    lag: int
    span: int
    reach: int  # windows after a burst's window whose background may hold it
    res: _Tail
    high: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    marked: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


class Engine:
    """Streaming multi-timescale rate trigger on one binned series.

    ``bin_width`` is the nominal bin width (s); ``threshold`` the significance
    a window must reach, one per timescale of the ladder (or one for all);
    ``log_far(k, S)`` ranks windows of different timescales (log10 of the
    false-alarm rate per day), default ``-S``. Call :meth:`push` with consecutive chunks and
    :meth:`flush` at the end; both return finished :class:`GroupReport` s.
    """

    def __init__(
        self,
        config: TriggerConfig,
        bin_width: float,
        threshold: float | np.ndarray,
        log_far: Callable[[int, np.ndarray], np.ndarray] | None = None,
    ):
        if not bin_width > 0:
            raise ValueError(f"bin width must be > 0 s (got {bin_width})")
        self.cfg = config
        self.width = float(bin_width)
        self.log_far = log_far or (lambda k, sig: -sig)
        b = lambda s: config.bins(s, bin_width)  # noqa: E731
        self.gap, self.bkg, self.var = (
            b(config.gap),
            b(config.background),
            b(config.variance_window),
        )
        self.min_var = b(config.min_variance_window)
        self.merge = b(config.merge_gap) if config.merge_gap > 0 else 0
        self.post = b(config.post_window)
        self.ladder = config.ladder(bin_width)
        self.kmax = int(self.ladder[-1])
        self.thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), self.ladder.shape)
        self.clip = config.residual_clip
        self.clip_bias = _CLIP_BIAS.get(self.clip) or _clip_bias(self.clip)
        self.min_bkg_exposure = config.min_background_fraction * self.bkg * self.width
        bins = ("time", "width", "raw", "expo", "clean", "valid")
        cums = ("cum_raw", "cum_alive", "cum_expo", "cum_bad", "cum_clean", "cum_r1", "cum_n1")
        self.bins = _Tail(bins, (float, float, float, float, float, bool))
        # counts of bins (invalid; used for the variance) are summed as integers: exact
        # like the float sums, and several times faster to accumulate
        self.cums = _Tail(cums, (float, float, float, np.int64, float, float, np.int64))
        self.rate_raw = _Tail(("rate", "fano1"), (float, float))
        self.fano_clean = _Tail(("fano",), (float,))
        self.scales = []
        for k in self.ladder:
            step = config.step(int(k), bin_width)
            lag = -(-(int(k) + self.gap) // step)
            span = max(1, b(config.variance_seconds(k * bin_width)) // step)
            bkg = max(self.bkg, b(config.background_seconds(k * bin_width)))
            core, rest = config.window_weights(int(k), bin_width)
            reach = -(-(int(k) + self.gap + bkg) // step)
            res = _Tail(("cum_r", "cum_n"), (float, np.int64))
            self.scales.append(_Scale(int(k), step, bkg, core, rest, 0, lag, span, reach, res))
        self.bkg_max = max(sc.bkg for sc in self.scales)
        self.n = 0  # bins received
        self.spiked = 0  # bins through the spike veto
        self.look = config.spike_reach  # the spike veto's look-ahead (bins)
        self.last_end: float | None = None
        self.grouper = Grouper(self, config)
        self.zero_run = 0.0  # expected counts over the current run of zero bins
        self.history = self.gap + self.bkg_max + self.var + 2 * self.kmax + self.post + 8

    # ------------------------------------------------------------------ input
    def push(
        self,
        time: np.ndarray,
        width: np.ndarray,
        counts: np.ndarray,
        exposure: np.ndarray | None = None,
        valid: np.ndarray | None = None,
    ) -> list[GroupReport]:
        """Add consecutive bins (start times, widths, counts) and evaluate."""
        time, width, counts, exposure, valid = self._fill_gaps(time, width, counts, exposure, valid)
        if len(time):
            self._ingest(time, width, counts, exposure, valid)
            self._veto(self.n - self.look)
            self._evaluate()
        return self.grouper.collect(final=False)

    def flush(self) -> list[GroupReport]:
        """End of data: the last bins have no right neighbours; close every group."""
        self._veto(self.n)
        self._evaluate(final=True)
        return self.grouper.collect(final=True)

    def _fill_gaps(self, time, width, counts, exposure, valid):
        time = np.asarray(time, dtype=float)
        width = np.broadcast_to(np.asarray(width, dtype=float), time.shape).copy()
        counts = np.asarray(counts, dtype=float)
        exposure = width.copy() if exposure is None else np.asarray(exposure, dtype=float).copy()
        valid = np.ones(time.shape, bool) if valid is None else np.asarray(valid, bool).copy()
        if not (len(time) == len(counts) == len(exposure) == len(valid)):
            raise ValueError("time, counts, exposure and valid must have the same length")
        if len(time) == 0:
            return time, width, counts, exposure, valid
        prev_end = np.concatenate(
            ([time[0] if self.last_end is None else self.last_end], (time + width)[:-1])
        )
        hole = time - prev_end
        if np.any(hole < -0.5 * self.width):
            i = int(np.argmax(hole < -0.5 * self.width))
            raise ValueError(
                f"bins overlap or go back in time at t={time[i]!r} (previous bin ends at "
                f"{prev_end[i]!r}); sort the light curve and remove duplicate bins"
            )
        nfill = np.where(hole > 0.5 * self.width, np.rint(hole / self.width), 0).astype(np.int64)
        cap = int(self.cfg.max_fill / self.width)
        nfill = np.minimum(nfill, max(cap, self.history))
        self.last_end = float(time[-1] + width[-1])
        if not nfill.any():
            return time, width, counts, exposure, valid
        reps = nfill + 1
        idx = np.repeat(np.arange(len(time)), reps)
        first = np.cumsum(reps) - 1  # position of the real bin in each repeated block
        real = np.zeros(len(idx), bool)
        real[first] = True
        # filler j before real bin i: starts at prev_end[i] + j*w
        offs = np.arange(len(idx)) - np.repeat(first - nfill, reps)
        ftime = np.repeat(prev_end, reps) + offs * self.width
        out_t = np.where(real, time[idx], ftime)
        out_w = np.where(real, width[idx], self.width)
        out_c = np.where(real, counts[idx], 0.0)
        out_e = np.where(real, exposure[idx], 0.0)
        out_v = np.where(real, valid[idx], False)
        return out_t, out_w, out_c, out_e, out_v

    def _ingest(self, time, width, counts, exposure, valid) -> None:
        good = valid & np.isfinite(counts) & np.isfinite(exposure) & (exposure > 0) & (width > 0)
        counts = np.where(good, counts, 0.0)
        exposure = np.where(good, exposure, 0.0)
        start = self.n
        alive = good & (counts > 0)
        self.cums.append(cum_raw=counts, cum_alive=np.where(alive, exposure, 0.0))
        good &= ~self._dropouts(start, counts, exposure, good)
        exposure = np.where(good, exposure, 0.0)
        self.bins.append(
            time=time, width=width, raw=counts, expo=exposure, clean=counts, valid=good
        )
        self.cums.append(cum_expo=exposure, cum_bad=~good)
        self.n += len(time)
        self._rates(start, self.n)

    def _dropouts(self, a: int, counts, exposure, good) -> np.ndarray:
        """Runs of zero counts that the background says are impossible (detector off).

        The expectation uses the rate of bins with counts ("alive" rate), which
        does not depend on earlier drop-out decisions, so the result does not
        depend on chunking.
        """
        zero = good & (counts == 0)
        if not zero.any():
            self.zero_run = 0.0
            return zero
        rate = self._window_rate("cum_raw", a, len(counts), 1, "cum_alive", need=0.0)
        cs = np.cumsum(np.where(zero, np.nan_to_num(rate * exposure, nan=0.0), 0.0))
        last = np.maximum.accumulate(np.where(~zero, cs, -np.inf))
        run = np.where(zero, np.where(np.isneginf(last), cs + self.zero_run, cs - last), 0.0)
        self.zero_run = float(run[-1])
        return zero & (run >= self.cfg.dropout_expected_counts)

    # ------------------------------------------------------- background rates
    def _window_rate(
        self,
        cum: str,
        s0: int,
        n: int,
        step: int = 1,
        ecum: str = "cum_expo",
        need=None,
        bkg: int | None = None,
        full: bool = False,
    ):
        """Background rate before the window starts s0, s0+step, ... (NaN if too little).

        ``bkg`` bins long (default the configured background); with ``full``,
        also the background's exposure and its number of invalid bins.
        """
        need = self.min_bkg_exposure if need is None else need
        bkg = self.bkg if bkg is None else bkg
        c = self.cums
        hi, lo = s0 - self.gap - c.base, s0 - self.gap - bkg - c.base
        e = _take(c[ecum], hi, n, step) - _take(c[ecum], lo, n, step)
        x = _take(c[cum], hi, n, step) - _take(c[cum], lo, n, step)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where((e >= need) & (e > 0), x / e, np.nan)
        if not full:
            return rate
        if bkg == self.bkg:  # the configured background: invalid bins are allowed in it
            return rate, e, None
        bad = _take(c["cum_bad"], hi, n, step) - _take(c["cum_bad"], lo, n, step)
        return rate, e, bad

    def _rates(self, a: int, b: int) -> None:
        """Raw background rate and raw 1-bin excess variance for new bins."""
        rate = self._window_rate("cum_raw", a, b - a)
        sl = slice(a - self.bins.base, b - self.bins.base)
        mu = rate * self.bins["expo"][sl]
        ok = (mu > 0) & self.bins["valid"][sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(ok, np.minimum((self.bins["raw"][sl] - mu) ** 2 / mu, self.clip), 0.0)
        self.cums.append(cum_r1=r, cum_n1=ok)
        fano, _ = self._trailing(self.cums, "cum_r1", "cum_n1", a, b - a, 1, self.gap + 1, self.var)
        self.rate_raw.append(rate=rate, fano1=np.where(_ >= self.min_var, fano, np.nan))

    def _trailing(self, tail: _Tail, rname: str, nname: str, j0: int, n: int, step: int, lag, span):
        """Clipped mean residual of items [j-lag-span+1, j-lag] as variance ratio (>= 1)."""
        hi = j0 - lag + 1 - tail.base
        lo = hi - span
        cnt = _take(tail[nname], hi, n, step) - _take(tail[nname], lo, n, step)
        r = _take(tail[rname], hi, n, step) - _take(tail[rname], lo, n, step)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.maximum(r / cnt / self.clip_bias, 1.0)
        return f, cnt

    # ------------------------------------------------------------ spike veto
    def _veto(self, upto: int) -> None:
        """Finalize clean counts for bins [spiked, upto): bin j is judged with bins up to
        j + ``spike_reach`` (the look-ahead ``push`` keeps back)."""
        a, b = self.spiked, upto
        if b <= a:
            return
        r = self.look
        ri = slice(a - self.rate_raw.base, b - self.rate_raw.base)
        rate = self.rate_raw["rate"][ri]
        fano = self.rate_raw["fano1"][ri]
        lo, hi = a - r - self.bins.base, b + r - self.bins.base
        raw = _padded(self.bins["raw"], lo, hi, 0.0)
        expo = _padded(self.bins["expo"], lo, hi, 0.0)
        valid = _padded(self.bins["valid"], lo, hi, False)
        mid = slice(r, r + b - a)
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = rate * expo[mid]
            z0 = np.where(valid[mid], (raw[mid] - mu) / np.sqrt(fano * mu), -np.inf)
            # neighbours only where the bin itself is far up (few): same numbers as for all
            i = np.flatnonzero(z0 > self.cfg.spike_sigma)
            zs = {}
            for d in range(-r, r + 1):
                if d:
                    m = rate[i] * expo[i + r + d]
                    zs[d] = np.where(
                        valid[i + r + d], (raw[i + r + d] - m) / np.sqrt(fano[i] * m), np.nan
                    )
        # a burst's peak drags its neighbours up, a spike's stay at background: the two
        # next to it (an invalid one counts as flat) ...
        limit = np.maximum(
            self.cfg.spike_neighbour_sigma, self.cfg.spike_neighbour_fraction * z0[i]
        )
        near = np.nan_to_num(zs[-1], nan=-np.inf) + np.nan_to_num(zs[1], nan=-np.inf)
        spike = near < limit
        if r > 1:  # ... and all 2r (a wider burst whose next bin fell low); same odds
            wide = np.nansum(np.array([zs[d] for d in zs]).reshape(2 * r, -1), axis=0)
            floor = self.cfg.spike_context_sigma * np.sqrt(2 * r)
            spike &= wide < np.maximum(floor, np.sqrt(r) * limit)
        i = i[spike]
        clean = raw[mid].copy()
        clean[i] = mu[i]
        bi = slice(a - self.bins.base, b - self.bins.base)
        self.bins["clean"][bi] = clean
        self.cums.truncate("cum_clean", a - self.cums.base + 1)
        self.cums.append(cum_clean=clean)
        self.spiked = b

    # ------------------------------------------------------------ evaluation
    def _evaluate(self, final: bool = False) -> None:
        """Every window that ends at or before the last clean bin, all timescales.

        Bracketed mode waits until the background after the window is there too
        (``gap + background`` of latency); at the end of data the last windows
        fall back to the background before them.
        """
        end = self.spiked
        ahead = 0 if final or not self.cfg.bracket else self.gap + self.bkg
        c = self.cums
        firsts = [sc.next_window * sc.step for sc in self.scales]
        a0 = min(firsts)
        if end <= a0:
            return
        rate_all = self._window_rate("cum_clean", a0, end - a0)
        cands: list[np.ndarray] = []
        for sc, thr in zip(self.scales, self.thresholds, strict=True):
            last = (end - sc.k - ahead) // sc.step
            nw = last + 1 - sc.next_window
            if nw <= 0:
                continue
            j0 = sc.next_window
            s0 = j0 * sc.step
            sc.next_window = last + 1
            lo, hi = s0 - c.base, s0 + sc.k - c.base
            n = _take(c["cum_clean"], hi, nw, sc.step) - _take(c["cum_clean"], lo, nw, sc.step)
            e = _take(c["cum_expo"], hi, nw, sc.step) - _take(c["cum_expo"], lo, nw, sc.step)
            bad = _take(c["cum_bad"], hi, nw, sc.step) - _take(c["cum_bad"], lo, nw, sc.step)
            rate = _take(rate_all, s0 - a0, nw, sc.step)
            ebkg = float(self.bkg)  # white-noise floor: F_1 (1 + k/L) in bins
            if sc.bkg > self.bkg:
                rate, ebkg = self._long_background(sc, s0, nw, rate)
            if self.cfg.bracket:
                rate = self._bracket(rate, s0 + sc.k, nw, sc.step, end)
            mu = rate * e
            ok = (bad == 0) & (mu > 0)
            # the tested statistic: the window's counts, or for a tapered or decaying
            # window the weighted counts scaled to Poisson-like units (x, m: mean =
            # variance under background), with ``eff`` its effective exposure
            x, m, eff = n, mu, e
            if sc.rest != 1.0:
                x, m, eff = self._weighted(sc, s0, nw, n, e, rate)
            if sc.k == 1:
                # its own F_1 is what is being measured: judge against the raw one
                floor = _take(self.rate_raw["fano1"], s0 - self.rate_raw.base, nw, sc.step)
            else:
                f1 = _take(self.fano_clean["fano"], s0 - self.fano_clean.base, nw, sc.step)
                # white noise gives F_1 (1 + k/L) (the background estimate's own scatter;
                # for a long background and a weighted window, effective exposures);
                # measured F_k is used only above that floor, so its noise never lowers F
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = eff / ebkg if sc.bkg > self.bkg else (eff / e) * (sc.k / ebkg)
                    floor = f1 * (1.0 + ratio)
            d = x - m
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(ok, d * d / m, 0.0)
            use = self._variance_sample(sc, j0, ok, d, r, floor)
            if use is not ok:
                r[~use] = 0.0
            np.minimum(r, self.clip, out=r)
            sc.res.append(cum_r=r, cum_n=use)
            fano, cnt = self._trailing(sc.res, "cum_r", "cum_n", j0, nw, 1, sc.lag, sc.span)
            if sc.k == 1:
                fano = np.where(cnt >= self.min_var, fano, np.nan)
                self.fano_clean.append(fano=fano)
            else:
                fano = np.where(cnt * sc.step >= 10 * sc.k, np.maximum(fano, floor), floor)
            with np.errstate(divide="ignore", invalid="ignore"):
                pre = (x - m) / np.sqrt(fano * m)
            hit = np.flatnonzero(ok & (pre >= thr))
            if hit.size:
                sig = poisson_significance(x[hit], m[hit], fano[hit])
                keep = sig >= thr
                h = hit[keep]
                if h.size:
                    s = s0 + h * sc.step
                    k = np.full(h.size, sc.k)
                    score = self.log_far(sc.k, sig[keep])
                    cols = (s, k, sig[keep], n[h], mu[h], rate[h], e[h], fano[h], score)
                    cands.append(np.column_stack(cols))
            self._trim_scale(sc)
        rows = np.concatenate(cands) if cands else np.empty((0, 9))
        if rows.size:
            order = np.lexsort((rows[:, 0], rows[:, 0] + rows[:, 1]))
            rows = rows[order]
        self.grouper.add([Candidate(*map(float, r)) for r in rows], end - ahead)
        self._trim()

    def _variance_sample(self, sc: _Scale, j0: int, ok, diff, r2, floor) -> np.ndarray:
        """Which windows j0, j0+1, ... enter the excess-variance estimate of their timescale.

        ``r2`` is ``(x-m)^2/m`` of each window (0 where not ``ok``), ``diff`` its
        ``x - m``. A window more than ``variance_exclusion_sigma``
        above its background (judged against the white-noise floor, which does not
        depend on the estimate: no recursion) is a burst, not background scatter; it
        is left out, and so is every later window whose background may contain it
        (``reach``: up to ``gap + bkg + k`` bins after its start). Windows beyond the
        residual clip (3 sigma, either sign) within that reach after it are its
        decaying tail, or windows whose background holds it and so fall below it:
        marked the same way, so the exclusion reaches past them (one level: a 3-sigma
        window far from any 5-sigma one is noise, kept). Otherwise a bright burst
        inflates F, i.e. lowers the significance of everything on that timescale, for
        as long as it stays in the variance window (up to 43 min).

        The state is the (few) marked window indices of the last ``reach`` windows;
        decisions depend only on earlier windows, so they are the same whatever the
        chunking. Bracketed mode: the windows whose *later* background holds a burst
        are not known yet when they are evaluated, and are kept.
        """
        cut = self.cfg.variance_exclusion_sigma
        if not np.isfinite(cut):
            return ok
        nw = len(r2)
        with np.errstate(invalid="ignore"):
            i = np.flatnonzero(r2 > self.clip * floor)  # beyond the clip (cut > clip)
            high = j0 + i[(diff[i] > 0) & (r2[i] > cut * cut * floor[i])]
        beyond = j0 + i
        sc.high = np.concatenate((sc.high[sc.high >= j0 - sc.reach], high))
        if sc.high.size and beyond.size:
            pos = np.searchsorted(sc.high, beyond - sc.reach)
            after = pos < sc.high.size
            after[after] = sc.high[pos[after]] <= beyond[after]
            high = np.union1d(high, beyond[after])
        sc.marked = np.concatenate((sc.marked[sc.marked >= j0 - sc.reach], high))
        if not sc.marked.size:
            return ok
        # windows i with a marked window in [i - reach, i]
        cover = np.zeros(nw + 1)
        lo = np.clip(sc.marked - j0, 0, nw)
        hi = np.clip(sc.marked + sc.reach + 1 - j0, 0, nw)
        np.add.at(cover, lo, 1.0)
        np.add.at(cover, hi, -1.0)
        return ok & (np.cumsum(cover[:-1]) == 0)

    def _weighted(self, sc: _Scale, s0: int, nw: int, n, e, rate):
        """Weighted counts of windows weighted 1 on their core bins, ``rest`` elsewhere.

        The core is the first half (decaying windows) or the middle (tapered
        windows). With ``S = sum w e`` and ``Q = sum w^2 e`` the weighted counts
        have mean ``r S`` and Poisson variance ``r Q``; scaled by ``c = S/Q`` they
        have mean = variance (``c r S``), so the likelihood-ratio significance and
        the excess-variance machinery apply unchanged (``c S`` is the effective
        exposure).
        """
        c, a = self.cums, sc.rest
        lo = s0 + sc.core[0] - c.base
        hi = lo + sc.core[1]
        n1 = _take(c["cum_clean"], hi, nw, sc.step) - _take(c["cum_clean"], lo, nw, sc.step)
        e1 = _take(c["cum_expo"], hi, nw, sc.step) - _take(c["cum_expo"], lo, nw, sc.step)
        xs = n1 + a * (n - n1)
        ws = e1 + a * (e - e1)
        q = e1 + a * a * (e - e1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(q > 0, ws / q, 1.0)
        return scale * xs, scale * rate * ws, scale * ws

    def _long_background(self, sc: _Scale, s0: int, nw: int, rate):
        """The longer background of a long timescale, where it can be trusted.

        It is used where it has no invalid bin (so gaps and drop-outs behave
        the same on every timescale) and agrees with the short background
        within ``background_consistency`` sigma (the difference of two nested
        means has variance ``F_1 r (1/e_short - 1/e_long)``): after a step or
        a ramp the short background, which follows it, is kept.
        """
        lrate, le, lbad = self._window_rate("cum_clean", s0, nw, sc.step, bkg=sc.bkg, full=True)
        _, ebkg, _ = self._window_rate("cum_clean", s0, nw, sc.step, full=True)
        f1 = _take(self.fano_clean["fano"], s0 - self.fano_clean.base, nw, sc.step)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (rate - lrate) / np.sqrt(f1 * lrate * np.maximum(1.0 / ebkg - 1.0 / le, 0.0))
            use = (lbad == 0) & (np.abs(z) <= self.cfg.background_consistency)
        use |= (lbad == 0) & (le == ebkg) & np.isfinite(lrate)  # same data (stream start)
        return np.where(use, lrate, rate), np.where(use, le, ebkg)

    def _bracket(self, pre: np.ndarray, e0: int, n: int, step: int, end: int) -> np.ndarray:
        """Mean of the rates before and after windows ending at e0, e0+step, ...

        The two background windows are symmetric about the test window, so the
        mean is the linear interpolation of the rate (a trend cancels).
        """
        ends = e0 + step * np.arange(n)
        have = ends + self.gap + self.bkg <= end
        post = np.full(n, np.nan)
        if have.any():
            m = int(np.count_nonzero(have))  # windows are in order: a prefix has data
            post[:m] = self._window_rate("cum_clean", e0 + 2 * self.gap + self.bkg, m, step)
        both = np.isfinite(pre) & np.isfinite(post)
        return np.where(both, 0.5 * (pre + post), np.where(np.isfinite(pre), pre, post))

    def _trim_scale(self, sc: _Scale) -> None:
        keep = sc.next_window - sc.span - sc.lag - 2
        if keep - sc.res.base > 4 * sc.span + 1024:
            sc.res.trim(keep)

    def _trim(self) -> None:
        keep = min(self.spiked - self.history, self.grouper.oldest_needed())
        if keep - self.bins.base > max(self.history, 4096):
            for t in (self.bins, self.cums, self.rate_raw, self.fano_clean):
                t.trim(max(keep, t.base))

    # --------------------------------------------------------- look-ups used by grouping
    def background_bins(self, k: int) -> int:
        """Background length (bins) of the windows of ``k`` bins."""
        return next((sc.bkg for sc in self.scales if sc.k == k), self.bkg)

    def interval(self, a: int, b: int) -> tuple[float, float, int]:
        """Clean counts, valid exposure and invalid bins over global bins [a, b)."""
        c = self.cums
        lo = int(np.clip(a - c.base, 0, len(c["cum_expo"]) - 1))
        hi = int(np.clip(b - c.base, 0, len(c["cum_expo"]) - 1))
        return (
            float(c["cum_clean"][hi] - c["cum_clean"][lo]),
            float(c["cum_expo"][hi] - c["cum_expo"][lo]),
            int(c["cum_bad"][hi] - c["cum_bad"][lo]),
        )

    def raw_counts(self, a: int, b: int) -> np.ndarray:
        lo = max(a - self.bins.base, 0)
        return self.bins["raw"][lo : max(b - self.bins.base, lo)]

    def time_of(self, i: int) -> float:
        """Start time of global bin ``i`` (end of bin i-1)."""
        bi = i - self.bins.base
        if bi < len(self.bins["time"]):
            return float(self.bins["time"][max(bi, 0)])
        return float(self.bins["time"][-1] + self.bins["width"][-1])

    def fano1(self, i: int) -> float:
        fi = int(np.clip(i - self.fano_clean.base, 0, len(self.fano_clean["fano"]) - 1))
        f = self.fano_clean["fano"][fi] if len(self.fano_clean["fano"]) else np.nan
        return float(f) if np.isfinite(f) else 1.0


def _take(arr: np.ndarray, first: int, n: int, step: int) -> np.ndarray:
    """``arr[first + i*step]`` for i < n, indices below 0 clamped to 0 (stream start)."""
    if first >= 0:
        return arr[first : first + (n - 1) * step + 1 : step]
    return arr[np.maximum(first + step * np.arange(n), 0)]


def _padded(arr: np.ndarray, a: int, b: int, fill) -> np.ndarray:
    """``arr[a:b]`` with ``fill`` where the range leaves the array."""
    out = np.full(b - a, fill, dtype=arr.dtype)
    lo, hi = max(a, 0), min(b, len(arr))
    if hi > lo:
        out[lo - a : hi - a] = arr[lo:hi]
    return out


def _clip_bias(clip: float) -> float:
    """E[min(z^2, clip)] for a standard normal z."""
    from scipy import special, stats

    c = np.sqrt(clip)
    tail = 2 * (c * stats.norm.pdf(c) + special.ndtr(-c))
    return float(1 - tail + clip * 2 * special.ndtr(-c))


__all__ = ["Engine"]
