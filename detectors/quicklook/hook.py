"""The daemon's ``pointing_graph`` hook (entry point in pyproject.toml, see nrt/plugins.py)."""

from __future__ import annotations

from typing import Any

import nrt
from detectors.quicklook.graph import REQUIRED_KINDS, build


def pointing_graph(ready: Any, config: Any) -> list[nrt.Element]:
    """The quick-look target, then every check (restored from cache after the target ran).

    ``ready`` is a ``PointingReady``; check limits come from the ``[checks]`` tables of the
    configuration (``config.checks``: check name -> overrides). The drift reference is the
    nominal line energies: the daemon keeps no state between pointings, so a gain jump is
    caught inside its pointing by the slice step, and afterwards as a position warning.
    """
    missing = [k for k in REQUIRED_KINDS if k not in ready.roots]
    if missing:
        raise nrt.AnalysisException(
            f"pointing {ready.pointing}: no {', '.join(missing)} telemetry ({ready.reason}); "
            "quick-look needs isgri, acs, hk and the pointing record"
        )
    graph = build(ready.roots, limits=getattr(config, "checks", None) or None)
    return [graph.target, *graph.checks]
