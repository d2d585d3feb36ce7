"""``nrt quicklook DIR``: the per-pointing quick-look and health checks over a directory."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the FITS products here, one subdirectory per pointing.",
)
@click.option("--pointing", "pointings", multiple=True, help="Only this pointing id (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per pointing.")
def quicklook(
    directory: Path, outdir: Path | None, pointings: tuple[str, ...], as_json: bool
) -> None:
    """Run the quick-look graph on every pointing of DIRECTORY's telemetry files.

    Pointings are taken in id order (revolution, then number: time order); each one's calibration drift is measured from the
    previous one's line positions. Results are cached ($NRT_CACHE_DIR), so running again
    restores them. A pointing whose record is not closed gets provisional products, up
    to its last chunk (marked PTGOPEN in the FITS headers, "provisional" in --json).
    Exit status 2 if any check is in alarm, else 0.
    """
    import nrt
    from detectors.quicklook.graph import build, reference_from, roots_from_files, run_quicklook

    files = sorted(p for p in directory.glob("*.fits") if not p.name.startswith("."))
    if not files:
        raise click.ClickException(
            f"{directory}: no telemetry files (<kind>_<pointing>_<seq>.fits)"
        )
    every = roots_from_files(files)
    chosen = list(pointings) or sorted(every)  # INTEGRAL ids (revolution, number) sort in time
    unknown = [p for p in chosen if p not in every]
    if unknown:
        raise click.ClickException(f"{directory}: no files for pointing(s) {', '.join(unknown)}")
    worst, reference = 0, None
    for pid in chosen:
        try:
            graph = build(every[pid], reference=reference)
            try:
                nrt.run(graph.PointingInfo)
            except nrt.AnalysisException:  # no closed record: provisional, up to the data
                graph = build(every[pid], reference=reference, open_pointing=True)
            run_quicklook(graph, outdir=outdir / pid if outdir else None)
        except (ValueError, nrt.AnalysisException) as exc:
            line = {"pointing": pid, "error": str(exc)}
            click.echo(json.dumps(line) if as_json else f"{pid}  skipped: {exc}")
            continue
        reference = reference_from(graph)
        summary = graph.target.summary
        if getattr(graph.PointingInfo, "provisional", False):
            summary = {**summary, "provisional": True}
        worst = max(worst, summary["status"])
        if as_json:
            click.echo(json.dumps({"pointing": pid, **summary}, sort_keys=True))
            continue
        names = {0: "ok", 1: "WARNING", 2: "ALARM"}
        bad = [f"{c}: {names[s]}" for c, s in summary["checks"].items() if s]
        click.echo(
            f"{pid}  {summary['exposure']:7.0f} s  {summary['counts']:9d} counts  "
            f"gain {summary['gain']:.4f}  {len(summary['sources'])} source(s)  "
            + (", ".join(bad) or "all checks ok")
            + ("  (provisional: pointing record not closed)" if summary.get("provisional") else "")
        )
    raise SystemExit(2 if worst >= 2 else 0)
