"""Energy calibration: line fits on raw energies -> gain and offset -> calibrated events.

The on-board calibration source (241Am, 59.3 keV) and the 511 keV annihilation line
are always in ISGRI's spectrum. Their positions on the raw (telemetered) energy scale
give ``E_raw = gain * E_true + offset``; the calibrated events are
``(E_raw - offset) / gain``. With only the 59.3 keV line, the offset is kept at its
default; with neither, the defaults are used and ``source`` says so.
"""

from __future__ import annotations

import numpy as np

import nrt
from detectors.quicklook import lines as line_fitting
from nrt.telemetry.pointings import TelemetryFiles

#: Calibration lines: label -> true energy (keV).
CALIBRATION_LINES: dict[str, float] = {"59.3": 59.3, "511": 511.0}


def _events(root: nrt.Element) -> dict[str, np.ndarray]:
    columns = root.columns
    if not len(columns.get("TIME", ())):
        raise nrt.AnalysisException(f"no ISGRI events for pointing {root.pointing}")
    return columns


class LineFit(nrt.Element):
    """Calibration lines fitted on the raw energy scale: over the pointing, and per slice.

    The slices (``slice_seconds`` long) show a gain change inside the pointing: a jump
    appears as a step between slices wherever it falls, not only halfway.
    """

    version = "2"
    cached = True
    input_events = TelemetryFiles
    lines = CALIBRATION_LINES
    search = 0.3
    sigma_guess = {"59.3": 2.2, "511": 5.6}  # keV: ISGRI-like resolution
    min_counts = 50.0
    slice_seconds = 300.0
    hash_includes = (line_fitting,)

    def main(self) -> None:
        ev = _events(self.input_events)
        energy, time = ev["ENERGY"], ev["TIME"]
        t0, t1 = float(time.min()), float(time.max())
        nslices = max(1, round((t1 - t0) / self.slice_seconds))
        edges = np.linspace(t0, t1, nslices + 1)
        where = np.clip(np.searchsorted(edges, time, side="right") - 1, 0, nslices - 1)

        def fit(values: np.ndarray, line: str) -> dict:
            return line_fitting.fit_line(
                values,
                self.lines[line],
                search=self.search,
                sigma_guess=self.sigma_guess.get(line),
                min_counts=self.min_counts,
            )

        self.fits = {k: fit(energy, k) for k in self.lines}
        order = np.argsort(where, kind="stable")
        bounds = np.searchsorted(where[order], np.arange(nslices + 1))
        parts = [energy[order[bounds[i] : bounds[i + 1]]] for i in range(nslices)]
        self.slices = {k: [fit(part, k) for part in parts] for k in self.lines}
        self.slice_times = [float(v) for v in 0.5 * (edges[1:] + edges[:-1])]
        self.nevents = int(energy.size)


class EnergyCalibration(nrt.Element):
    """Gain and offset from the pointing's line fit (raw = gain * true + offset)."""

    version = "1"
    cached = True
    input_lines = LineFit
    default_gain = 1.0
    default_offset = 0.0

    def main(self) -> None:
        fits = self.input_lines.fits
        truth = self.input_lines.lines
        ok = [k for k in truth if fits[k]["ok"]]
        if len(ok) >= 2:
            ordered = sorted(ok, key=truth.__getitem__)
            ka, kb = ordered[0], ordered[-1]
            ea, eb = truth[ka], truth[kb]
            pa, pb = fits[ka]["position"], fits[kb]["position"]
            sa, sb = fits[ka]["position_err"], fits[kb]["position_err"]
            gain = (pb - pa) / (eb - ea)
            offset = pa - gain * ea
            self.gain_err = float(np.hypot(sa, sb) / (eb - ea))
            self.offset_err = float(np.hypot(sa, ea * self.gain_err))
            self.source = "lines:" + ",".join(sorted(ok))
        elif ok:
            k = ok[0]
            offset = self.default_offset
            gain = (fits[k]["position"] - offset) / truth[k]
            self.gain_err = float(fits[k]["position_err"] / truth[k])
            self.offset_err = None
            self.source = f"line:{k}"
        else:
            gain, offset = self.default_gain, self.default_offset
            self.gain_err = self.offset_err = None
            self.source = "default"
        self.gain = float(gain)
        self.offset = float(offset)


class CalibratedEvents(nrt.Element):
    """ISGRI events with calibrated energies (memory only: cheap to redo, large to keep)."""

    version = "1"
    cached = False
    input_events = TelemetryFiles
    input_calibration = EnergyCalibration

    def main(self) -> None:
        ev = _events(self.input_events)
        cal = self.input_calibration
        self.time = ev["TIME"]
        self.energy = ((ev["ENERGY"] - cal.offset) / cal.gain).astype(np.float32)
        self.dety = ev["DETY"]
        self.detz = ev["DETZ"]
