"""``nrt detect FILE... [--far PER_DAY] [--json]``: the batch rate trigger on light curves."""

from __future__ import annotations

import json
import sys

import click


@click.command("detect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--far",
    "far",
    type=float,
    default=1.0,
    show_default=True,
    help="False-alarm rate per day over all timescales (the only threshold).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per trigger per line.")
def detect(files: tuple[str, ...], far: float, as_json: bool) -> None:
    """Run the rate trigger on light curves; print one trigger per line.

    FILES are OGIP light curves (COUNTS, TOTCOUNTS or RATE x width; GTIs,
    FRACEXP, TIMEZERO) or two/three-column text files. A file that cannot be
    used is reported on stderr and the others still run; the exit status is 1
    if any file failed. Flags: background_variation (the rate stayed up after
    the excess: slew, SAA, detector settling), saturated, near_gap,
    post_window_truncated.
    """
    from detectors.config import TriggerConfig
    from detectors.ratetrigger import detect as run
    from detectors.series import DetectorInputError, from_lightcurve, utc_converter
    from nrt.telemetry.errors import TelemetryError
    from nrt.telemetry.lightcurves import read_lightcurve

    if not far > 0:
        raise click.BadParameter("must be > 0", param_hint="--far")
    config = TriggerConfig(far_per_day=far)
    failed = False
    for path in files:
        try:
            lc = read_lightcurve(path)
            series = from_lightcurve(lc, config)
        except (TelemetryError, DetectorInputError) as exc:
            click.echo(f"nrt detect: {exc}", err=True)
            failed = True
            continue
        for note in series.notes:
            click.echo(f"nrt detect: {path}: {note}", err=True)
        triggers = run(
            series.time,
            series.width,
            series.counts,
            series.exposure,
            series.valid,
            instrument=lc.instrument,
            config=config,
            band=lc.band,
            time_to_utc=utc_converter(lc),
            bin_width=series.bin_width,
        )
        for trig in triggers:
            if as_json:
                click.echo(json.dumps({"file": path, **trig.to_dict()}))
            else:
                flags = f" [{','.join(trig.flags)}]" if trig.flags else ""
                click.echo(
                    f"{path}: {trig.instrument} {trig.time_utc} t={trig.time_met:.3f}"
                    f" timescale={trig.timescale:g}s S={trig.significance:.1f}"
                    f" far={trig.far_per_day:.2g}/day counts={trig.counts:.0f}"
                    f" bkg={trig.background:.1f}{flags}"
                )
    if failed:
        sys.exit(1)
