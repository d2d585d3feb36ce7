"""The daemon's ``pointing_graph`` hook (entry point in pyproject.toml, see nrt/plugins.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nrt
from detectors.quicklook.graph import REQUIRED_KINDS, Graph, build


@dataclass
class PointingWork:
    """What the daemon runs for one pointing, and how its FITS products are written."""

    graph: Graph

    @property
    def elements(self) -> list[nrt.Element]:
        """The quick-look target, every check, and every product (all cached elements)."""
        return [self.graph.target, *self.graph.checks, *self.graph.products]

    def write(self, outdir: Path) -> dict[str, Path]:
        """FITS products of the pointing (call after the elements ran)."""
        from detectors.quicklook.fitsout import write_products

        return write_products(self.graph, Path(outdir))


def pointing_graph(ready: Any, config: Any) -> PointingWork:
    """The quick-look graph of a ready pointing.

    ``ready`` is a ``PointingReady``; check limits come from the ``[checks]`` tables of the
    configuration (``config.checks``: check name -> overrides). The drift reference is the
    nominal line energies: the daemon keeps no state between pointings, so a gain jump is
    caught inside its pointing by the slice step, and afterwards as a position warning.
    A pointing without a closed record gets provisional products (``OpenPointingInfo``).
    """
    missing = [k for k in REQUIRED_KINDS if k not in ready.roots]
    if missing:
        raise nrt.AnalysisException(
            f"pointing {ready.pointing}: no {', '.join(missing)} telemetry ({ready.reason}); "
            "quick-look needs isgri, acs, hk and the pointing record"
        )
    # No closed record (tracker: tstart None): the grace time handed it on while open.
    return PointingWork(
        build(
            ready.roots,
            limits=getattr(config, "checks", None) or None,
            open_pointing=getattr(ready, "tstart", 0.0) is None,
            data_stop=getattr(ready, "data_stop", None),
        )
    )
