"""``nrt reprocess``: run the per-pointing graphs of the archive on a Dask cluster.

The graph comes from a builder, a function ``pointing -> Element | list[Element]``
named with ``--graph module:function`` (or ``$NRT_GRAPH``). The default,
``nrt.archive:pointing_graph``, is the daemon's own quick-look graph (the
``pointing_graph`` hook) over the telemetry its ingest log recorded. For
``--from/--to`` the builder's module must also define
``pointings_between(start, stop) -> list[str]`` (datetimes in UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from nrt.element import AnalysisException, Element

Builder = Callable[[str], "Element | Iterable[Element]"]


def load_builder(spec: str | None) -> Builder:
    """The graph builder named by `spec` ("module:function"), else the archive's."""
    if spec:
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise click.BadParameter(
                f"{spec!r} is not module:function (e.g. tests.reprocess.graph:pointing_graph)",
                param_hint="--graph",
            )
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise click.BadParameter(f"cannot load {spec}: {exc}", param_hint="--graph") from None
    from nrt import archive

    return archive.pointing_graph


def pointings_between(builder: Builder, start: dt.datetime, stop: dt.datetime) -> list[str]:
    lister = getattr(builder, "pointings_between", None) or getattr(
        sys.modules.get(builder.__module__), "pointings_between", None
    )
    if lister is None:
        raise click.UsageError(
            f"the graph builder {builder.__module__}.{builder.__name__} cannot list pointings by "
            "date (its module defines no pointings_between); pass --pointings instead"
        )
    return list(lister(start, stop))


def parse_date(text: str, option: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date; use e.g. 2024-03-01 or 2024-03-01T12:00",
            param_hint=option,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def parse_pointings(text: str) -> list[str]:
    """'A,B,C', or '@file' with one pointing per line (blank lines and # comments skipped)."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise click.BadParameter(f"{path}: {exc.strerror}", param_hint="--pointings") from None
        items = [line.split("#")[0].strip() for line in lines]
    else:
        items = [item.strip() for item in text.split(",")]
    return list(dict.fromkeys(item for item in items if item))


def select(targets: list[Element], names: list[str] | None) -> list[Element]:
    """Targets, or the elements of their graphs whose class name is in `names`."""
    if not names:
        return targets
    everything = {e.signature: e for t in targets for e in t.walk()}
    chosen = [e for e in everything.values() if type(e).__name__ in names]
    missing = set(names) - {type(e).__name__ for e in chosen}
    if missing:
        known = sorted({type(e).__name__ for e in everything.values()})
        raise click.BadParameter(
            f"no element named {', '.join(sorted(missing))} in the graph; known: {', '.join(known)}",
            param_hint="--elements",
        )
    return chosen


class Progress:
    """A progress bar on a terminal; one JSON object per line otherwise (or with --json)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json or not sys.stdout.isatty()
        self.bar: Any = None

    def emit(self, obj: dict[str, Any]) -> None:
        if self.as_json:
            click.echo(json.dumps(obj, sort_keys=True, default=str))

    def start(self, total: int) -> None:
        if not self.as_json and total:
            self.bar = click.progressbar(length=total, label="reprocessing", show_pos=True)
            self.bar.__enter__()

    def step(self, event: dict[str, Any], report: Any) -> None:
        done = report.ok + report.failed + len(report.errors)
        self.emit({"event": "element", "done": done, "total": report.submitted, **event})
        if self.bar is not None:
            self.bar.update(1)
            if event["status"] == "error":
                click.echo(f"\n{event['element']} [{event['signature'][:12]}]: {event['error']}")

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command()
@click.option("--pointings", help="Pointing ids, comma-separated, or @FILE (one per line).")
@click.option("--from", "start", help="First date (ISO, UTC) with --to; needs the graph's lister.")
@click.option("--to", "stop", help="End date (exclusive).")
@click.option("--scheduler", help="Dask scheduler address (tcp://HOST:8786); else a local cluster.")
@click.option("--workers", type=int, help="Local cluster size (default: CPUs); or wait for N.")
@click.option("--elements", help="Only these elements (class names, comma-separated) and inputs.")
@click.option(
    "--graph",
    envvar="NRT_GRAPH",
    help="Graph builder module:function (pointing -> elements); default: the daemon's "
    "quick-look over its ingest log (nrt.archive:pointing_graph).",
)
@click.option("--cache-dir", type=click.Path(), envvar="NRT_CACHE_DIR", help="Shared cache root.")
@click.option("--state-dir", type=click.Path(), envvar="NRT_STATE_DIR", help="Index directory.")
@click.option(
    "--worker-cache-dir",
    help="Workers' own scratch cache; iRODS (NRT_IRODS_COLLECTION) is then the shared store.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="JSON progress lines (default off a terminal)."
)
def reprocess(
    pointings: str | None,
    start: str | None,
    stop: str | None,
    scheduler: str | None,
    workers: int | None,
    elements: str | None,
    graph: str | None,
    cache_dir: str | None,
    state_dir: str | None,
    worker_cache_dir: str | None,
    as_json: bool,
) -> None:
    """Reprocess pointings on Dask: compute only what no cache tier holds, in parallel."""
    if bool(pointings) == bool(start or stop):
        raise click.UsageError("give either --pointings or --from and --to")
    if (start is None) != (stop is None):
        raise click.UsageError("--from and --to go together")
    builder = load_builder(graph)
    if pointings:
        ids = parse_pointings(pointings)
    else:
        try:
            ids = pointings_between(builder, parse_date(start, "--from"), parse_date(stop, "--to"))
        except LookupError as exc:
            raise click.UsageError(str(exc)) from None
    targets: list[Element] = []
    skipped: list[dict[str, Any]] = []
    for pointing in ids:
        try:
            built = builder(pointing)
        except (AnalysisException, LookupError) as exc:  # no imager data; not archived
            status = "failed" if isinstance(exc, AnalysisException) else "error"
            skipped.append({"event": "pointing", "pointing": pointing, "status": status,
                            "error": str(exc)})  # fmt: skip
            continue
        targets.extend([built] if isinstance(built, Element) else list(built))
    names = [n.strip() for n in elements.split(",") if n.strip()] if elements else None
    targets = select(targets, names)

    from distributed import Client

    from nrt.cache import Cache
    from nrt.executors.dask import CacheSpec, DaskExecutor, local_cluster

    cache = Cache.open(cache_dir, state_dir)
    spec = CacheSpec.of(cache)
    if worker_cache_dir:
        if not spec.irods_collection:
            raise click.UsageError(
                "--worker-cache-dir needs a shared store: set NRT_IRODS_COLLECTION (and the "
                "iRODS environment file), or leave it out and share --cache-dir between machines"
            )
        spec = dataclasses.replace(spec, cache_dir=worker_cache_dir, shared_dir=False)
    progress = Progress(as_json)
    cluster = None
    if scheduler is None:
        cluster = local_cluster(workers)
    try:
        with Client(scheduler or cluster) as client:
            if scheduler and workers:
                client.wait_for_workers(workers, timeout=120)
            executor = DaskExecutor(client, spec)
            n_workers = len(client.scheduler_info()["workers"])
            progress.emit(
                {
                    "event": "start",
                    "pointings": len(ids),
                    "targets": len(targets),
                    "workers": n_workers,
                    "dashboard": client.dashboard_link,
                }
            )
            for event in skipped:
                progress.emit(event)
                if not progress.as_json:
                    click.echo(f"pointing {event['pointing']}: {event['error']}", err=True)
            started = {"done": False}

            def on_event(event: dict[str, Any], report: Any) -> None:
                if not started["done"]:
                    progress.start(report.submitted)
                    started["done"] = True
                progress.step(event, report)

            report = executor.reprocess(targets, cache, progress=on_event)
            progress.finish()
    finally:
        if cluster is not None:
            cluster.close()
        cache.close()
    unbuilt = sum(e["status"] == "error" for e in skipped)
    summary = {
        "event": "summary",
        "pointings": len(ids),
        "pointings_skipped": len(skipped),
        **report.to_dict(),
    }
    if progress.as_json:
        progress.emit(summary)
    else:
        click.echo(
            f"{len(ids)} pointings: {report.planned} results needed, {report.held} already cached, "
            f"{report.submitted} computed on {n_workers} workers in {report.seconds:.1f} s "
            f"({report.failed} expected failures, {len(report.errors)} errors)"
        )
    if report.errors or unbuilt:
        sys.exit(1)
