"""The trigger record: what a burst detector hands to the alerts engine.

The field set is a contract with ``nrt.alerts`` (it maps onto the GCN unified
schema's ``trigger_time``, ``rate_snr``, ``rate_duration``, ``rate_energy_range``
and ``far``), so it is a frozen dataclass with plain JSON-friendly fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Flags a trigger may carry (documented in README "Detectors").
FLAG_BACKGROUND_VARIATION = "background_variation"
FLAG_SATURATED = "saturated"
FLAG_NEAR_GAP = "near_gap"
FLAG_POST_TRUNCATED = "post_window_truncated"
#: Prompt mode: the first window of a new group, reported at once (the full trigger
#: of the group follows, with its best window and classification).
FLAG_PRELIMINARY = "preliminary"


@dataclass(frozen=True)
class Trigger:
    """One burst candidate: the best window of a group of nearby excesses.

    ``time_met`` is in the light curve's own seconds (TIMEZERO applied) and marks
    the moment the trigger fired (the end of the first window above threshold);
    ``time_utc`` is the same instant in UTC ISO. ``timescale`` (s), ``counts``
    and ``background`` describe the most significant window; ``far_per_day`` is
    the false-alarm rate of the whole timescale set at that significance.
    """

    instrument: str
    time_utc: str
    time_met: float
    timescale: float
    significance: float
    far_per_day: float
    counts: float
    background: float
    band: tuple[float, float] | None
    flags: tuple[str, ...] = ()
    pointing: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        out["band"] = list(self.band) if self.band is not None else None
        out["flags"] = list(self.flags)
        return out
