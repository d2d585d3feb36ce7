"""Summaries of a run, for ``nrt replay`` and ``nrt demo``."""

from __future__ import annotations

import statistics
from typing import Any

from nrt.daemon.core import Summary


def latencies_ms(summary: Summary) -> list[float]:
    """Per alert: from its chunk's arrival (dequeued) to its commit to the outbox."""
    return [(r.submitted - r.chunk_arrival) * 1e3 for r in summary.alerts]


def latency_line(summary: Summary) -> str | None:
    found = latencies_ms(summary)
    if not found:
        return None
    return (
        "alert latency, chunk dequeued -> alert committed to the outbox: "
        f"median {statistics.median(found):.1f} ms, max {max(found):.1f} ms"
    )


def cache_line(summary: Summary) -> str | None:
    """How much of the graphs' work the cache saved (element runs against hits by tier)."""
    counts = dict(summary.cache)
    if not counts:
        return None
    computed = counts.pop("computed", 0)
    hits = {k.removesuffix(" hits"): v for k, v in counts.items() if v}
    total = computed + sum(hits.values())
    reused = f"{sum(hits.values()) / total:.0%}" if total else "-"
    by_tier = ", ".join(f"{tier} {n}" for tier, n in sorted(hits.items())) or "none"
    return f"cache: {computed} element runs, {sum(hits.values())} reused ({reused}; {by_tier})"


def summary_dict(summary: Summary) -> dict[str, Any]:
    return {
        "chunks": summary.chunks,
        "seconds": round(summary.seconds, 3),
        "data_seconds": round(summary.data_seconds, 3),
        "speed": round(summary.data_seconds / summary.seconds, 1) if summary.seconds else None,
        "alerts": [
            {
                "id": r.alert.id,
                "instrument": r.alert.instrument,
                "trigger_time": r.alert.trigger_time,
                "significance": r.trigger.significance,
                "timescale": r.trigger.timescale,
                "flags": list(r.trigger.flags),
                "pointing": r.alert.pointing,
            }
            for r in summary.alerts
        ],
        "pointings": [
            {
                "pointing": p.pointing,
                "outcome": p.outcome,
                "seconds": round(p.seconds, 3),
                "checks": {
                    r["check"]: max((int(v) for v in r.get("modules", {}).values()), default=0)
                    for r in p.reports
                },
            }
            for p in summary.pointings
        ],
        "problems": [{"file": f, "problem": m} for f, m in summary.problems],
        "latency_ms": [round(v, 2) for v in latencies_ms(summary)],
        "cache": dict(summary.cache),
    }


def summary_text(summary: Summary) -> str:
    d = summary_dict(summary)
    lines = [
        f"replayed {d['chunks']} chunks ({d['data_seconds']:.0f} s of data) in {d['seconds']:.1f} s"
        + (f" = {d['speed']:.0f}x real time" if d["speed"] else ""),
        f"alerts: {len(d['alerts'])}",
    ]
    lines += [
        f"  {a['id']}  {a['trigger_time']}  {a['significance']:.1f} sigma on {a['timescale']:.2f} s"
        + (f"  [{', '.join(a['flags'])}]" if a["flags"] else "")
        for a in d["alerts"]
    ]
    lines.append(f"pointings: {len(d['pointings'])}")
    for p in d["pointings"]:
        bad = {k: v for k, v in p["checks"].items() if v}
        lines.append(
            f"  {p['pointing']}  {p['outcome']:<16} {p['seconds']:.2f} s  "
            + (
                ", ".join(f"{k}: {'warning' if v == 1 else 'ALARM'}" for k, v in bad.items())
                or "all checks ok"
            )
        )
    lines += [line for line in (latency_line(summary), cache_line(summary)) if line]
    if d["problems"]:
        lines.append(f"skipped files: {len(d['problems'])}")
        lines += [f"  {p['problem']}" for p in d["problems"][:10]]
    return "\n".join(lines)
