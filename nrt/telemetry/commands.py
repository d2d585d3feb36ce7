"""``nrt simulate``: the command-line face of :mod:`nrt.telemetry.simulator`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from nrt.telemetry import simulator


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--hours",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Simulated time span.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: the same seed writes the same bytes.",
)
@click.option(
    "--grb-rate",
    "grb_rate",
    type=click.FloatRange(min=0),
    show_default=True,
    default=simulator.DEFAULT_GRB_RATE,
    help="Injected GRBs per day.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    help="Deliver X times faster than real time.",
)
@click.option("--realtime", is_flag=True, help="Deliver in real time (same as --speed 1).")
@click.option(
    "--all-at-once",
    "all_at_once",
    is_flag=True,
    help="Write everything as fast as possible (the default).",
)
@click.option(
    "--anomalies",
    multiple=True,
    metavar="NAME[@SECONDS]",
    help="Inject gain_jump, hot_pixel, hk_excursion (comma-separated or repeated; "
    "@SECONDS after the start, else a random time).",
)
@click.option(
    "--chunk-seconds",
    type=float,
    default=simulator.CHUNK_SECONDS,
    show_default=True,
    help="Length of each telemetry file.",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the truth file [default: OUT/truth.json].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line.")
def simulate(
    out: Path,
    hours: float,
    seed: int,
    grb_rate: float,
    speed: float | None,
    realtime: bool,
    all_at_once: bool,
    anomalies: tuple[str, ...],
    chunk_seconds: float,
    truth: Path | None,
    as_json: bool,
) -> None:
    """Write simulated INTEGRAL-like telemetry into OUT, with a truth.json of what was injected.

    Files are <kind>_<pointing>_<seq>.fits chunks renamed into OUT in time order.
    """
    if sum([speed is not None, realtime, all_at_once]) > 1:
        raise click.UsageError("choose one of --speed, --realtime, --all-at-once")
    pace = 1.0 if realtime else speed
    try:
        parsed = simulator.parse_anomalies(list(anomalies))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--anomalies") from exc
    show = sys.stderr.isatty() and not as_json
    with click.progressbar(
        length=1000, label="simulating", file=sys.stderr, hidden=not show
    ) as bar:
        done = [0]

        def progress(fraction: float) -> None:
            step = int(fraction * 1000) - done[0]
            if step > 0:
                bar.update(step)
                done[0] += step

        try:
            result = simulator.simulate(
                out,
                hours,
                seed,
                grb_rate_per_day=grb_rate,
                anomalies=[f"{n}@{t}" if t is not None else n for n, t in parsed],
                pace=pace,
                chunk_seconds=chunk_seconds,
                truth_path=truth,
                progress=progress,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    summary = {
        "out": str(out),
        "truth": str(truth or out / "truth.json"),
        "hours": hours,
        "seed": seed,
        "files": result["files"],
        "pointings": len(result["pointings"]),
        "grbs": len(result["grbs"]),
        "grbs_in_fov": sum(1 for g in result["grbs"] if g["in_fov"]),
        "anomalies": [a["kind"] for a in result["anomalies"]],
    }
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo(
            f"wrote {sum(summary['files'].values())} files ({', '.join(f'{k} {v}' for k, v in sorted(summary['files'].items()))}) "
            f"to {out}; {summary['grbs']} GRBs ({summary['grbs_in_fov']} in the imager's field), "
            f"anomalies: {', '.join(summary['anomalies']) or 'none'}; truth: {summary['truth']}"
        )
