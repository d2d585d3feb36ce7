"""The daemon's stream detectors: telemetry chunks in, trigger records out.

Registered as the ``stream_triggers`` hook (``nrt.plugins``). One
:class:`~detectors.ratetrigger.RateTrigger` per instrument stream, fed chunk by
chunk with bounded state. SPI-ACS chunks are rates already; ISGRI events are
binned on an absolute 50 ms grid (so chunk edges line up), one trigger per
energy band, the false-alarm budget shared between bands. A chunk older than
what a stream has already seen (late or replayed out of order) cannot be put
back in time: it is skipped for triggering (counted in ``late_chunks``) and
still used by the per-pointing quick-look.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import numpy as np

from detectors.config import TriggerConfig
from detectors.ratetrigger import DEFAULT_BANDS, RateTrigger
from detectors.trigger import FLAG_PRELIMINARY, Trigger
from nrt import metrics
from nrt.telemetry.formats import tt_time

log = logging.getLogger(__name__)

ISGRI_BIN = 0.05  # s


def _utc(mjdref: float):
    def convert(seconds: float) -> str:
        return tt_time(seconds, mjdref).utc.isot + "Z"

    return convert


class StreamTriggers:
    """Rate triggers for the kinds listed in the daemon's ``[trigger] instruments``."""

    def __init__(self, config: Any = None) -> None:
        far = float(getattr(config, "far_per_day", 1.0))
        kinds = tuple(getattr(config, "instruments", ("acs",)))
        self.kinds = kinds
        self.far_per_day = far
        self.prompt = bool(getattr(config, "prompt", False))
        self._streams: dict[str, list[tuple[tuple[float, float] | None, RateTrigger]]] = {}
        self._seen_until: dict[str, float] = {}
        self.late_chunks = 0

    def _make(self, chunk) -> list[tuple[tuple[float, float] | None, RateTrigger]]:
        to_utc = _utc(chunk.mjdref)
        if chunk.kind == "acs":
            width = float(chunk.header.get("TIMEDEL", 0.05))
            config = TriggerConfig(far_per_day=self.far_per_day, prompt=self.prompt)
            return [(None, RateTrigger("SPI-ACS", width, config, time_to_utc=to_utc))]
        bands = DEFAULT_BANDS
        config = TriggerConfig(far_per_day=self.far_per_day / len(bands), prompt=self.prompt)
        return [
            (band, RateTrigger("ISGRI", ISGRI_BIN, config, band=band, time_to_utc=to_utc))
            for band in bands
        ]

    def push(self, chunk) -> list[Trigger]:
        """Feed one chunk; return the triggers that completed."""
        return self.push_many([chunk])

    def push_many(self, chunks: list) -> list[Trigger]:
        """Feed consecutive chunks at once (a backlog); return the triggers that completed.

        The same triggers as pushing them one by one (the engine's running sums do not
        depend on the chunking), for one pass per stream instead of one per chunk: a
        replay or a daemon catching up spent most of its detector time on per-call
        overhead. A trigger's pointing is that of the chunk holding its time.
        """
        taken: dict[str, list] = {}
        for chunk in chunks:
            if chunk.kind not in self.kinds or (chunk.nrows == 0 and chunk.kind == "acs"):
                continue
            if chunk.tstart < self._seen_until.get(chunk.kind, -math.inf) - 1e-6:
                self.late_chunks += 1
                continue
            self._seen_until[chunk.kind] = chunk.tstop
            taken.setdefault(chunk.kind, []).append(chunk)
        found: list[Trigger] = []
        for kind, mine in taken.items():
            if kind not in self._streams:
                self._streams[kind] = self._make(mine[0])
            try:
                found += self._push_streams(self._streams[kind], mine)
            except ValueError:
                # The engine refuses a chunk's bins (e.g. a repeated time) before it takes
                # any: find that chunk; the others go through as they would one by one.
                for chunk in mine:
                    try:
                        found += self._push_streams(self._streams[kind], [chunk])
                    except ValueError as exc:
                        log.error("%s: %s; skipped by the stream detectors", chunk.name, exc)
        # An excess's preliminary and complete triggers may now come in one call: both go
        # out (the alert, then its update), bands merged within each.
        first = [t for t in found if FLAG_PRELIMINARY in t.flags]
        complete = [t for t in found if FLAG_PRELIMINARY not in t.flags]
        return sorted(
            _best_per_event(first) + _best_per_event(complete),
            key=lambda t: (t.time_met, FLAG_PRELIMINARY not in t.flags),
        )

    def _push_streams(self, streams, chunks: list) -> list[Trigger]:
        """Consecutive chunks of one kind through each of its streams (bands)."""
        found: list[Trigger] = []
        for band, trigger in streams:
            parts = [self._series(chunk, band) for chunk in chunks]
            time, width, counts = (np.concatenate(c) for c in zip(*parts, strict=True))
            if len(time):
                new = trigger.push(time, width, counts)
                found += [replace(t, pointing=_pointing_at(chunks, t.time_met)) for t in new]
                metrics.TRIGGER_EVALUATIONS.labels(trigger.instrument).inc(
                    len(time) * _windows_per_bin(trigger)
                )
        return found

    @staticmethod
    def _series(chunk, band) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if chunk.kind == "acs":
            time = chunk.columns["TIME"]
            width = np.full(len(time), float(chunk.header.get("TIMEDEL", 0.05)))
            return time, width, chunk.columns["COUNTS"].astype(float)
        first = math.floor(chunk.tstart / ISGRI_BIN)
        last = math.ceil(chunk.tstop / ISGRI_BIN)
        edges = ISGRI_BIN * np.arange(first, last + 1)
        energy = chunk.columns["ENERGY"]
        sel = (energy >= band[0]) & (energy < band[1])
        counts, _ = np.histogram(chunk.columns["TIME"][sel], bins=edges)
        return edges[:-1], np.full(len(counts), ISGRI_BIN), counts.astype(float)

    def flush(self) -> list[Trigger]:
        """End of the stream (replay): report what is still open."""
        found = [
            t for streams in self._streams.values() for _, trig in streams for t in trig.flush()
        ]
        return _best_per_event(found)


def _pointing_at(chunks: list, time: float) -> str:
    """The pointing of the chunk holding `time` (the last one that starts before it; the
    first chunk for a time before them all)."""
    holder = chunks[0]
    for chunk in chunks:
        if chunk.tstart > time:
            break
        holder = chunk
    return holder.pointing


def _windows_per_bin(trigger: RateTrigger) -> float:
    """Test windows per new bin over the timescale ladder (a window of k bins starts every
    ``config.step(k)`` bins)."""
    cfg, w = trigger.config, trigger.bin_width
    return float(sum(1.0 / cfg.step(int(k), w) for k in cfg.ladder(w)))


def _best_per_event(triggers: list[Trigger]) -> list[Trigger]:
    """Triggers of several bands within one another's windows are one event: keep the best."""
    kept: list[Trigger] = []
    for t in sorted(triggers, key=lambda t: -t.significance):
        if not any(
            k.instrument == t.instrument
            and abs(k.time_met - t.time_met) <= max(k.timescale, t.timescale)
            for k in kept
        ):
            kept.append(t)
    return sorted(kept, key=lambda t: t.time_met)
