"""``nrt cache ...``: inspect and maintain the cache (mirrors ``nrt.cache.Cache``)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from nrt import units
from nrt.cache.chain import Cache
from nrt.cache.why import explain


def parse_bytes(text: str) -> int:
    try:
        return units.parse_bytes(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_age(text: str) -> float:
    try:
        return units.parse_seconds(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _emit(obj: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str) if as_json else text)


def _human(n: float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _resolve(cache: Cache, prefix: str) -> str:
    if cache.index is None:
        return prefix
    found = cache.index.find(prefix)
    if not found:
        raise click.ClickException(f"no product or known signature starts with {prefix!r}")
    if len(found) > 1 and prefix not in found:
        raise click.ClickException(f"{prefix!r} is ambiguous: {', '.join(s[:16] for s in found)}")
    return prefix if prefix in found else found[0]


@click.group()
@click.option("--cache-dir", type=click.Path(), envvar="NRT_CACHE_DIR", help="Cache root.")
@click.option("--state-dir", type=click.Path(), envvar="NRT_STATE_DIR", help="State directory.")
@click.pass_context
def cache(ctx: click.Context, cache_dir: str | None, state_dir: str | None) -> None:
    """Inspect and maintain the result cache."""
    ctx.obj = Cache.open(cache_dir, state_dir)


@cache.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def stats(c: Cache, as_json: bool) -> None:
    """Products, bytes and compute time held, by element."""
    s = c.stats()
    lines = [
        f"products: {s['products']}  ({s['failed']} negative results)",
        f"bytes:    {_human(s['bytes'])}",
        f"compute time saved per full reuse: {s['run_seconds']:.1f} s",
    ] + [f"  {r['element']:<30} {r['products']:>7}  {_human(r['bytes'])}" for r in s["by_element"]]
    _emit(s, as_json, "\n".join(lines))


@cache.command("ls")
@click.option("--element", help="Only this element (class name).")
@click.option("--pointing", help="Only this pointing.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def ls(c: Cache, element: str | None, pointing: str | None, limit: int, as_json: bool) -> None:
    """List cached products, oldest first."""
    where, params = ["1"], []
    if element:
        where.append("element = ?")
        params.append(element)
    if pointing:
        where.append("pointing = ?")
        params.append(pointing)
    rows = list(c.index.products(" AND ".join(where), params))[-limit:] if c.index else []
    for row in rows:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row["created"]))
        _emit(
            row,
            as_json,
            f"{row['signature'][:16]}  {row['element']:<28} {row['version']:<10} "
            f"{row['pointing'] or '-':<12}  {_human(row['size']):>10}  {created}  {row['status']}",
        )


@cache.command()
@click.argument("signature")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(c: Cache, signature: str, as_json: bool) -> None:
    """Where a result is, what made it, and what fetching it from each tier would cost."""
    signature = _resolve(c, signature)
    row = c.index.get(signature) if c.index else None
    components = c.index.components(signature) if c.index else None
    tiers, decision = _fetch_decision(c, signature, row)
    info = {
        "signature": signature,
        "product": row,
        "components": components,
        "tiers": tiers,
        "decision": decision,
    }
    if not row and not components:
        raise click.ClickException(f"{signature[:16]} is not known to the index")
    lines = [f"signature  {signature}"]
    if row:
        lines += [
            f"element    {row['element']} version {row['version']}",
            f"pointing   {row['pointing'] or '-'}",
            f"params     {row['params']}",
            f"size       {_human(row['size'])}   run time {row['run_seconds'] or 0:.3f} s",
            f"status     {row['status']}",
        ]
    if components:
        lines += [f"input      {k} -> {v[:16]}" for k, v in components["inputs"].items()]
    for t in tiers:
        if t.get("samples") is None:
            measured = "fixed estimate"
        else:
            measured = (
                f"latency {t['latency_s'] * 1e3:.2f} ms, {_human(t['bandwidth_bps'])}/s, "
                + (f"{t['samples']} transfers" if t["samples"] else "prior, not yet measured")
            )
        lines.append(
            f"tier       {t['tier']:<8} {'has it' if t['has'] else 'absent':<7} "
            f"fetch ~{t['fetch_seconds'] * 1e3:.2f} ms  ({measured}"
            f"{', read-only' if t['read_only'] else ''})  {t['decision']}"
        )
    lines.append(f"lookup     {decision}")
    _emit(info, as_json, "\n".join(lines))


def _fetch_decision(c: Cache, signature: str, row: dict | None) -> tuple[list[dict], str]:
    """Each tier's cost for this result and what a lookup would do (the chain's own plan)."""
    size = row["size"] if row and row["size"] else 0
    tiers = [
        {
            "tier": "memory",
            "has": c.memory.has(signature),
            "fetch_seconds": c.memory.cost(size),
            "read_only": False,
            "decision": "try",
        }
    ]
    for option in c.fetch_plan(signature):
        stats = getattr(option.tier, "stats", None)
        tiers.append(
            {
                "tier": option.tier.name,
                "has": option.tier.has(signature),
                "fetch_seconds": option.seconds,
                "read_only": option.tier.read_only,
                "decision": option.decision,
                "latency_s": stats.latency_s if stats else None,
                "bandwidth_bps": stats.bandwidth_bps if stats else None,
                "samples": stats.samples if stats else None,
            }
        )
    holding = [t for t in tiers if t["has"]]
    chosen = next((t for t in holding if t["decision"] == "try"), None)
    if chosen is not None:
        decision = f"fetch from {chosen['tier']} (~{chosen['fetch_seconds'] * 1e3:.2f} ms)"
    elif holding:
        decision = "recompute: " + holding[0]["decision"].removeprefix("skip: ")
    else:
        decision = "compute: no tier holds it"
    return tiers, decision


@cache.command()
@click.argument("signature_a")
@click.argument("signature_b")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per difference.")
@click.pass_obj
def why(c: Cache, signature_a: str, signature_b: str, as_json: bool) -> None:
    """Which component differs between two signatures (version, parameter, code, input...)."""
    a, b = _resolve(c, signature_a), _resolve(c, signature_b)
    diffs = explain(a, b, c.index.components)
    if not diffs:
        click.echo("identical signatures" if not as_json else "")
    for d in diffs:
        _emit(d.to_dict(), as_json, str(d))


@cache.command()
@click.option("--max-bytes", type=parse_bytes, help="Keep at most this much (e.g. 50G).")
@click.option("--max-age", type=parse_age, help="Evict what was not used for this long (e.g. 30d).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def gc(c: Cache, max_bytes: int | None, max_age: float | None, as_json: bool) -> None:
    """Evict expired, old, then cheapest-to-recompute results."""
    report = c.gc(max_bytes=max_bytes, max_age=max_age)
    _emit(
        report,
        as_json,
        f"evicted {report['evicted']} results, freed {_human(report['bytes_freed'])}",
    )


@cache.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def verify(c: Cache, as_json: bool) -> None:
    """Re-check every checksum; corrupt entries are removed (exit status 1 if any)."""
    report = c.verify()
    text = (
        f"checked {report['checked']} results: {len(report['corrupt'])} corrupt (removed), "
        f"{report['unindexed']} re-indexed, {report['dangling']} dangling index rows fixed"
    )
    text += "".join(f"\n  corrupt: {x['problem']}" for x in report["corrupt"])
    _emit(report, as_json, text)
    if report["corrupt"]:
        sys.exit(1)
