"""The localization stage: imager events around a trigger -> a sky position -> an alert update.

Keeps the last ``keep`` seconds of ISGRI events (bounded memory) and the
attitude of each pointing. A trigger asks for the burst interval; once the
events cover it (or ``wait`` seconds pass, or the replay ends), the coded-mask
localization (the ``localize`` hook) runs off the loop, and a position whose
image significance reaches ``min_significance`` inside the field of view is sent
as an update of the alert (record_number 2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nrt.alerts.model import Alert, Localization
from nrt.plugins import MissingHook, hook

log = logging.getLogger(__name__)


@dataclass
class _Request:
    record: Any  # AlertRecord
    interval: tuple[float, float]
    background: tuple[float, float]
    pointing: str | None
    asked: float


class LocalizationStage:
    def __init__(
        self,
        revise: Callable[[Any, Callable[[Alert], Alert]], Awaitable[Alert | None]],
        *,
        keep: float = 600.0,
        wait: float = 60.0,
        min_significance: float = 6.0,
    ) -> None:
        self.revise = revise
        self.keep = keep
        self.wait = wait
        self.min_significance = min_significance
        self._chunks: deque = deque()
        self._covered_until = -np.inf
        self._attitudes: dict[str, tuple[float, float, float]] = {}
        self._pending: list[_Request] = []
        self._tasks: set[asyncio.Task] = set()
        self.updates: list[Alert] = []
        try:
            self._localize = hook("localize")
        except MissingHook as exc:
            log.warning("localization disabled: %s", exc)
            self._localize = None

    # ------------------------------------------------------------ inputs

    def add(self, chunk: Any) -> None:
        """Take an ISGRI or pointing chunk (others are ignored)."""
        if chunk.kind == "pointing":
            cols = chunk.columns
            for i, pid in enumerate(cols["POINTING"]):
                key = pid.decode() if isinstance(pid, bytes) else str(pid)
                self._attitudes.pop(key.strip(), None)  # re-insert: newest last
                self._attitudes[key.strip()] = (
                    float(cols["RA"][i]),
                    float(cols["DEC"][i]),
                    float(cols["ROLL"][i]),
                )
            while len(self._attitudes) > 64:  # only recent pointings get bursts localized
                del self._attitudes[next(iter(self._attitudes))]
        elif chunk.kind == "isgri":
            self._chunks.append(chunk)
            self._covered_until = max(self._covered_until, chunk.tstop)
            while self._chunks and self._chunks[0].tstop < self._covered_until - self.keep:
                self._chunks.popleft()
        self._start_ready()

    def request(self, record: Any) -> None:
        """A new alert: localize it when the imager data cover the burst."""
        if self._localize is None:
            return
        t, scale = record.trigger.time_met, max(record.trigger.timescale, 0.05)
        start = t - scale
        stop = t + max(2 * scale, 1.0)
        background = (start - 60.0, start - 5.0)
        self._pending.append(
            _Request(record, (start, stop), background, record.trigger.pointing, time.monotonic())
        )
        self._start_ready()

    def _start_ready(self, force: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for req in self._pending:
            if force or self._covered_until >= req.interval[1] or now - req.asked > self.wait:
                task = asyncio.get_running_loop().create_task(self._run(req))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                keep.append(req)
        self._pending = keep

    async def drain(self) -> None:
        """End of input: localize what is still waiting with the data there are."""
        self._start_ready(force=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    # ------------------------------------------------------------ work

    def _events(self, lo: float, hi: float) -> dict[str, np.ndarray] | None:
        parts = [c.columns for c in self._chunks if c.tstop > lo and c.tstart < hi]
        if not parts:
            return None
        return {
            k: np.concatenate([p[k] for p in parts]) for k in ("TIME", "DETY", "DETZ", "ENERGY")
        }

    async def _run(self, req: _Request) -> None:
        attitude = self._attitudes.get(req.pointing or "")
        events = self._events(req.background[0], req.interval[1])
        if attitude is None or events is None:
            log.info("no imager data or attitude for alert %s: not localized", req.record.alert.id)
            return
        try:
            found = await asyncio.to_thread(
                self._localize,
                events["TIME"],
                events["DETY"],
                events["DETZ"],
                req.interval,
                req.background,
                attitude,
            )
        except (ValueError, ArithmeticError) as exc:
            log.info("alert %s not localized: %s", req.record.alert.id, exc)
            return
        if found is not None and getattr(found, "ambiguous", False):
            log.warning(
                "alert %s: the imager position is ambiguous (two positions a mask period "
                "apart fit equally); no position sent",
                req.record.alert.id,
            )
            return
        if found is None or found.significance < self.min_significance:
            log.info(
                "alert %s: imager significance %.1f below %.1f, no position",
                req.record.alert.id,
                getattr(found, "significance", 0.0),
                self.min_significance,
            )
            return
        position = Localization(found.ra % 360.0, found.dec, found.error_radius)
        note = f"ISGRI coded-mask position, image significance {found.significance:.1f}"
        update = await self.revise(
            req.record, lambda a: a.updated(localization=position, note=note)
        )
        if update is not None:
            req.record.localized = True
            self.updates.append(update)
            log.warning(
                "ALERT UPDATE %s: RA %.3f Dec %.3f +- %.1f arcmin",
                update.id,
                found.ra,
                found.dec,
                found.error_radius * 60,
            )
