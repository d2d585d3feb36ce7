"""Grouping of windows above threshold into triggers, and what each group looks like.

Windows that overlap, or lie within ``merge_gap`` of each other, across all
timescales, are one group (connected components of the overlap graph, so the
result does not depend on the order or chunking in which windows arrive). A
group is closed once no future window can touch it, and reported once the
``post_window`` after it is available, because the post window decides the
``background_variation`` flag: a burst comes back down, a background step or
ramp (slew, SAA exit) stays up. With ``prompt`` the first window of each new
group is also reported at once, flagged ``preliminary`` (for a fast first
alert; the full trigger follows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from detectors.config import TriggerConfig
from detectors.trigger import (
    FLAG_BACKGROUND_VARIATION,
    FLAG_NEAR_GAP,
    FLAG_POST_TRUNCATED,
    FLAG_PRELIMINARY,
    FLAG_SATURATED,
)

if TYPE_CHECKING:
    from detectors.engine import Engine


@dataclass(frozen=True)
class Candidate:
    """One window above threshold (global bin indices)."""

    start: float
    k: float
    significance: float
    counts: float
    background: float
    rate: float
    exposure: float
    fano: float
    score: float  # log10 false-alarm rate per day of this window: lower is better

    @property
    def end(self) -> int:
        return int(self.start + self.k)


@dataclass
class _Group:
    start: int
    end: int
    first: Candidate
    best: Candidate
    n: int = 1
    kmax: int = 1  # longest window in the group (its background reaches furthest back)


@dataclass(frozen=True)
class GroupReport:
    """A finished group: its firing window, best window and classification."""

    fire_index: int
    start: int
    end: int
    best: Candidate
    first: Candidate
    pre_rate: float
    post_rate: float
    post_sigma: float
    flags: tuple[str, ...] = field(default=())
    windows: int = 1


class Grouper:
    """Groups candidates as they arrive; reports them when classifiable."""

    def __init__(self, engine: Engine, config: TriggerConfig):
        self.engine = engine
        self.cfg = config
        self.open: list[_Group] = []
        self.closed: list[_Group] = []
        self.prompt: list[GroupReport] = []

    def add(self, cands: list[Candidate], evaluated_to: int) -> None:
        """Add candidates (windows ending at or before ``evaluated_to``)."""
        merge = self.engine.merge
        for c in cands:
            s, e = int(c.start), c.end
            touching = [g for g in self.open if s <= g.end + merge and e >= g.start - merge]
            g = _Group(s, e, c, c, kmax=int(c.k))
            if not touching and self.cfg.prompt:
                self.prompt.append(_prompt_report(c))
            for t in touching:
                self.open.remove(t)
                g = _merge(g, t)
            self.open.append(g)
        horizon = evaluated_to + 1 - self.engine.kmax  # earliest start of any future window
        done = [g for g in self.open if horizon > g.end + merge]
        for g in done:
            self.open.remove(g)
        self.closed.extend(sorted(done, key=lambda g: g.start))

    def oldest_needed(self) -> int:
        groups = self.open + self.closed
        return min((g.start for g in groups), default=1 << 62) - 2

    def collect(self, final: bool) -> list[GroupReport]:
        """Reports for closed groups whose post window is complete (all if final)."""
        if final:
            self.closed.extend(sorted(self.open, key=lambda g: g.start))
            self.open = []
        eng = self.engine
        ready = [g for g in self.closed if final or eng.spiked >= g.end + eng.gap + eng.post]
        self.closed = [g for g in self.closed if g not in ready]
        out, self.prompt = self.prompt, []
        return out + [self._report(g, final) for g in ready]

    def _report(self, g: _Group, final: bool) -> GroupReport:
        eng, cfg = self.engine, self.cfg
        flags: list[str] = []
        pre = g.first.rate
        a = g.end + eng.gap
        counts, expo, _ = eng.interval(a, a + eng.post)
        post_rate = counts / expo if expo > 0 else float("nan")
        fano = eng.fano1(a)
        post_sigma = (counts - pre * expo) / np.sqrt(fano * pre * expo) if expo > 0 else 0.0
        peak_excess = g.best.counts / g.best.exposure - pre
        if expo < 0.5 * eng.post * eng.width:
            flags.append(FLAG_POST_TRUNCATED)
        elif (
            post_rate - pre >= cfg.variation_fraction * peak_excess
            and post_sigma >= cfg.variation_sigma
        ):
            flags.append(FLAG_BACKGROUND_VARIATION)
        if _saturated(eng.raw_counts(g.start, g.end), cfg.saturation_run):
            flags.append(FLAG_SATURATED)
        _, _, bad = eng.interval(g.start - eng.gap - eng.background_bins(g.kmax), g.end + eng.gap)
        if bad:
            flags.append(FLAG_NEAR_GAP)
        return GroupReport(
            fire_index=g.first.end,
            start=g.start,
            end=g.end,
            best=g.best,
            first=g.first,
            pre_rate=pre,
            post_rate=post_rate,
            post_sigma=float(post_sigma),
            flags=tuple(flags),
            windows=g.n,
        )


def _prompt_report(c: Candidate) -> GroupReport:
    """A preliminary report: the first window of a new group, at once, unclassified."""
    return GroupReport(
        fire_index=c.end,
        start=int(c.start),
        end=c.end,
        best=c,
        first=c,
        pre_rate=c.rate,
        post_rate=float("nan"),
        post_sigma=0.0,
        flags=(FLAG_PRELIMINARY,),
    )


def _merge(a: _Group, b: _Group) -> _Group:
    first = min((a.first, b.first), key=lambda c: (c.end, c.start))
    best = min((a.best, b.best), key=lambda c: (c.score, -c.significance, c.start))
    return _Group(
        min(a.start, b.start), max(a.end, b.end), first, best, a.n + b.n, max(a.kmax, b.kmax)
    )


def _saturated(raw: np.ndarray, run: int) -> bool:
    """A flat top: ``run`` consecutive bins all equal to the group's (non-zero) maximum."""
    if raw.size < run:
        return False
    top = raw.max()
    if top <= 0:
        return False
    at = np.concatenate(([0], (raw == top).astype(np.int64), [0]))
    edges = np.flatnonzero(np.diff(at))
    return bool(np.any(edges[1::2] - edges[::2] >= run))
