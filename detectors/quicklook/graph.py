"""The per-pointing quick-look graph: products and health checks from the root elements.

``build(roots)`` wires the elements for one pointing from its telemetry roots
(``PointingTracker.roots()`` or ``roots_from_files``); ``QuickLook`` is the target
that depends on everything, so one ``run`` computes what is missing and a warm
pointing restores a single small result. ``run_quicklook`` runs it, writes the FITS
products if asked, and returns the elements.

    TelemetryFiles(isgri) -> LineFit -> EnergyCalibration -> CalibratedEvents
        -> Spectrum, LightCurves, SkyImage (+ PointingInfo)
    TelemetryFiles(isgri) -> DetectorMap -> ModuleRatesCheck, PixelCheck
    LineFit + EnergyCalibration -> CalibrationLinesCheck
    TelemetryFiles(acs) -> AcsSummary -> ShieldRateCheck
    TelemetryFiles(hk) -> HousekeepingCheck, DeadTimeCheck
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nrt
from checks.calibration import CalibrationLinesCheck
from checks.housekeeping import HousekeepingCheck
from checks.limits import DEFAULT_LIMITS, LimitsError, limits_for
from checks.pixels import PixelCheck
from checks.rates import DeadTimeCheck, ModuleRatesCheck, ShieldRateCheck
from detectors.quicklook.calibration import CalibratedEvents, EnergyCalibration, LineFit
from detectors.quicklook.products import (
    AcsSummary,
    DetectorMap,
    LightCurves,
    OpenPointingInfo,
    PointingInfo,
    SkyImage,
    Spectrum,
)
from nrt import metrics
from nrt.cache import Cache
from nrt.telemetry.formats import parse_chunk_filename
from nrt.telemetry.pointings import TelemetryFiles

REQUIRED_KINDS = ("isgri", "acs", "hk", "pointing")


class QuickLook(nrt.Element):
    """Everything for one pointing: a summary of the products and every check's report."""

    version = "1"
    cached = True
    input_spectrum = Spectrum
    input_lightcurves = LightCurves
    input_skyimage = SkyImage
    input_acs = AcsSummary
    input_calibration = EnergyCalibration
    input_check_lines = CalibrationLinesCheck
    input_check_modules = ModuleRatesCheck
    input_check_pixels = PixelCheck
    input_check_shield = ShieldRateCheck
    input_check_deadtime = DeadTimeCheck
    input_check_hk = HousekeepingCheck

    def main(self) -> None:
        checks = [v for k, v in sorted(self.inputs.items()) if k.startswith("input_check_")]
        self.reports = [c.report for c in checks]
        self.status = max(c.status for c in checks)
        spec, sky, acs = self.input_spectrum, self.input_skyimage, self.input_acs
        self.summary = {
            "exposure": float(spec.exposure),
            "counts": int(spec.spectrum["COUNTS"].sum()),
            "gain": float(self.input_calibration.gain),
            "offset": float(self.input_calibration.offset),
            "calibration": self.input_calibration.source,
            "lines": self.input_check_lines.positions,
            "sources": [
                dict(zip(sky.sources.colnames, map(float, row), strict=True)) for row in sky.sources
            ],
            "acs_mean_rate": acs.mean_rate,
            "acs_spikes": acs.spikes,
            "status": self.status,
            "checks": {r["check"]: r["status"] for r in self.reports},
        }


@dataclass
class Graph:
    """The elements of one pointing's quick-look (all share upstream instances)."""

    pointing: str
    target: QuickLook

    def __getattr__(self, name: str) -> Any:
        for element in self.target.walk():  # by class name, or a base's (OpenPointingInfo)
            if any(k.__name__ == name for k in type(element).__mro__):
                return element
        raise AttributeError(f"no element {name} in the quick-look graph of {self.pointing}")

    @property
    def products(self) -> list[nrt.Element]:
        t = self.target
        return [
            t.input_spectrum,
            t.input_lightcurves,
            t.input_skyimage,
            t.input_acs,
            self.DetectorMap,
            self.PointingInfo,
        ]

    @property
    def checks(self) -> list[nrt.Element]:
        return [v for k, v in sorted(self.target.inputs.items()) if k.startswith("input_check_")]


def build(
    roots: Mapping[str, TelemetryFiles],
    limits: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    reference: Mapping[str, float] | None = None,
    known_noisy: Iterable[Iterable[int]] = (),
    open_pointing: bool = False,
    data_stop: float | None = None,
) -> Graph:
    """The quick-look graph over one pointing's root elements.

    ``limits``: per-check overrides of ``checks.limits.DEFAULT_LIMITS``;
    ``reference``: line positions to measure drift from (e.g. the previous pointing's);
    ``known_noisy``: [DETY, DETZ] of known noisy pixels (not graded);
    ``open_pointing``: the pointing's record never closed (handed on by the grace time):
    its span ends with the last data chunk and the products are provisional
    (``OpenPointingInfo``; ``data_stop``: where the data reach, from the tracker).
    """
    missing = [k for k in REQUIRED_KINDS if k not in roots]
    if missing:
        raise ValueError(f"quick-look needs telemetry of kinds {REQUIRED_KINDS}; missing {missing}")
    limits = limits or {}
    for name in limits:
        if name not in DEFAULT_LIMITS:
            raise LimitsError(
                f"checks.{name}: unknown check; checks are {', '.join(sorted(DEFAULT_LIMITS))}"
            )
    events = roots["isgri"]
    if open_pointing:
        info: PointingInfo = OpenPointingInfo(
            input_pointing=roots["pointing"],
            input_events=events,
            input_acs=roots["acs"],
            input_hk=roots["hk"],
            data_stop=data_stop,
        )
    else:
        info = PointingInfo(input_pointing=roots["pointing"])
    lines = LineFit(input_events=events)
    calibration = EnergyCalibration(input_lines=lines)
    calibrated = CalibratedEvents(input_events=events, input_calibration=calibration)
    detmap = DetectorMap(input_events=events)
    acs = AcsSummary(input_acs=roots["acs"])

    def lim(name: str) -> dict[str, Any]:
        return limits_for(name, limits.get(name))

    extra = {"reference": dict(reference)} if reference else {}
    line_check = CalibrationLinesCheck(
        input_lines=lines, input_calibration=calibration, limits=lim("calibration_lines"), **extra
    )
    target = QuickLook(
        input_spectrum=Spectrum(input_events=calibrated, input_info=info),
        input_lightcurves=LightCurves(input_events=calibrated, input_info=info),
        input_skyimage=SkyImage(input_events=calibrated, input_info=info),
        input_acs=acs,
        input_calibration=calibration,
        input_check_lines=line_check,
        input_check_modules=ModuleRatesCheck(
            input_map=detmap, input_info=info, limits=lim("module_rates")
        ),
        input_check_pixels=PixelCheck(
            input_map=detmap,
            limits=lim("pixels"),
            known=tuple(tuple(int(v) for v in p) for p in known_noisy),
        ),
        input_check_shield=ShieldRateCheck(input_acs=acs, limits=lim("shield_rate")),
        input_check_deadtime=DeadTimeCheck(input_hk=roots["hk"], limits=lim("dead_time")),
        input_check_hk=HousekeepingCheck(input_hk=roots["hk"], limits=lim("housekeeping")),
    )
    return Graph(events.pointing, target)


def reference_from(previous: Graph) -> dict[str, float]:
    """Line positions of a computed pointing, as the ``reference`` of the next one."""
    return dict(previous.target.summary["lines"])


def roots_from_files(paths: Iterable[Path | str]) -> dict[str, dict[str, TelemetryFiles]]:
    """Root elements per pointing and kind from telemetry files named ``<kind>_<pointing>_<seq>.fits``.

    For tools and tests that read a directory without the daemon's ingest log; the
    signatures are the same as the tracker's (content hashes of the files).
    """
    found: dict[tuple[str, str], dict[str, str]] = {}
    for path in paths:
        path = Path(path)
        kind, pointing, _ = parse_chunk_filename(path.name)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        found.setdefault((pointing, kind), {})[sha] = str(path)
    out: dict[str, dict[str, TelemetryFiles]] = {}
    for (pointing, kind), files in sorted(found.items()):
        root = TelemetryFiles(pointing=pointing, kind=kind, files=tuple(sorted(files)))
        object.__setattr__(root, "_paths", files)
        out.setdefault(pointing, {})[kind] = root
    return out


def run_quicklook(
    graph: Graph,
    cache: Cache | None = None,
    *,
    outdir: Path | str | None = None,
    publish: bool = False,
) -> Graph:
    """Compute or restore one pointing's quick-look; write FITS products to `outdir`.

    ``publish``: put every check report into the Prometheus gauges. Counted in
    ``nrt_quicklook_runs_total`` and timed in ``nrt_quicklook_seconds``.
    """
    started = time.perf_counter()
    try:
        nrt.run(graph.target, cache=cache)
        if outdir is not None:
            from detectors.quicklook.fitsout import write_products

            for element in graph.products:
                nrt.run(element, cache=cache)
            write_products(graph, Path(outdir))
    except nrt.AnalysisException:
        metrics.QUICKLOOK_RUNS.labels("expected_failure").inc()
        raise
    except Exception:
        metrics.QUICKLOOK_RUNS.labels("error").inc()
        raise
    metrics.QUICKLOOK_RUNS.labels("ok").inc()
    metrics.QUICKLOOK_SECONDS.observe(time.perf_counter() - started)
    if publish:
        for report in graph.target.reports:
            metrics.publish_check(report)
    return graph
