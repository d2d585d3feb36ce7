"""The archive as the daemon recorded it: per-pointing graphs for ``nrt reprocess``.

The ingest log (``$NRT_STATE_DIR/ingest.sqlite``) knows every telemetry chunk the
daemon handled, where its bytes are, and the span of each pointing. From it,
``pointing_graph(pointing)`` builds the root elements the pointing tracker would
(one per kind; a corrected file replaces the earlier one of the same name) and
asks the installed ``pointing_graph`` hook (``nrt.hooks`` entry points, see
``nrt/plugins.py``) for the quick-look graph: reprocessing computes exactly what
the live daemon computed, under the same signatures. Nothing is written to the
log. This is ``nrt reprocess``'s default graph.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

from nrt.element import Element
from nrt.paths import state_dir

#: Seconds since MJD 51544.0 TT, the time base of the ingest log.
EPOCH_MJD = 51544.0


@cache
def _log(path: str) -> Any:
    from nrt.telemetry.ingest import IngestLog

    return IngestLog(Path(path))


def ingest_log_path() -> Path:
    return state_dir() / "ingest.sqlite"


def ready(pointing: str, log: Any = None) -> Any:
    """A ``PointingReady`` for an archived pointing, from the ingest log (read only)."""
    from nrt.telemetry.pointings import PointingTracker

    path = ingest_log_path()
    if log is None:
        if not path.is_file():
            raise LookupError(
                f"no ingest log at {path}: reprocessing by pointing id reads the daemon's "
                "record of its telemetry; set NRT_STATE_DIR to the daemon's state directory"
            )
        log = _log(str(path))
    found = PointingTracker(log).load(pointing)
    if found is None:
        raise LookupError(
            f"pointing {pointing} is not in the ingest log {path}; `nrt reprocess --from/--to` "
            "lists the archived ones"
        )
    return found


def pointing_graph(pointing: str) -> list[Element]:
    """The elements the daemon's quick-look runs for `pointing` (checks and products)."""
    from nrt.plugins import hook

    work = hook("pointing_graph")(ready(pointing), None)
    return list(getattr(work, "elements", work))


def _spans(log: Any) -> dict[str, tuple[float, float]]:
    """Pointing id -> (TSTART, TSTOP), the latest pointing record for each wins."""
    spans: dict[str, tuple[float, float]] = {}
    for record in log.records():
        for pid, start, stop in record.spans:
            spans[pid] = (start, stop)
    return spans


def _epoch_seconds(when: dt.datetime) -> float:
    """UTC datetime -> seconds since MJD 51544 TT."""
    from astropy.time import Time

    return float((Time(when.astimezone(dt.UTC)).tt.mjd - EPOCH_MJD) * 86400.0)


def pointings_between(start: dt.datetime, stop: dt.datetime) -> list[str]:
    """Archived pointings that start in [start, stop), in time order."""
    path = ingest_log_path()
    if not path.is_file():
        raise LookupError(f"no ingest log at {path}; set NRT_STATE_DIR to the daemon's")
    lo, hi = _epoch_seconds(start), _epoch_seconds(stop)
    spans = _spans(_log(str(path)))
    return [p for p, (a, b) in sorted(spans.items(), key=lambda x: x[1]) if b > a and lo <= a < hi]
