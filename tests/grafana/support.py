"""Loading grafana/dashboards.py (a script beside the JSON, not a package)."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from types import ModuleType

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"


@cache
def dashboards() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "nrt_grafana_dashboards", GRAFANA / "dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_expressions() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) for every panel target of every dashboard."""
    out = []
    for board in dashboards().DASHBOARDS.values():
        out += [(board["uid"], title, expr) for title, expr in dashboards().expressions(board)]
    return out


def exported_families(text: str) -> dict[str, str]:
    """Metric family name -> type, from a text exposition's # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))


def mentions(expr: str, family: str) -> bool:
    return re.search(rf"\b{re.escape(family)}(_total|_bucket|_sum|_count)?\b", expr) is not None
