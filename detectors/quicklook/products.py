"""Quick-look products of one pointing: attitude, spectrum, light curves, maps, ACS summary.

Each is an element (cached on disk) whose outputs are arrays and astropy Tables;
``fitsout`` turns them into FITS files for astropy and ds9. Times are seconds TT
since the chunks' MJDREF, as in the telemetry.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

import nrt
from detectors.quicklook.calibration import CalibratedEvents
from detectors.quicklook.layout import IMAGING_BAND, STANDARD_BANDS, band_label
from detectors.quicklook.pixels import cleaned
from nrt.telemetry import codedmask
from nrt.telemetry.formats import MJDREF_IJD
from nrt.telemetry.pointings import TelemetryFiles


class PointingInfo(nrt.Element):
    """Attitude and time span of the pointing (its closed ``pointing`` record)."""

    version = "1"
    cached = True
    input_pointing = TelemetryFiles

    def main(self) -> None:
        root = self.input_pointing
        cols = root.columns
        ids = [str(p).strip() for p in cols.get("POINTING", ())]
        rows = [
            i
            for i, p in enumerate(ids)
            if p == root.pointing and cols["TSTOP"][i] > cols["TSTART"][i]
        ]
        if not rows:
            raise nrt.AnalysisException(
                f"pointing {root.pointing}: no closed record (TSTOP > TSTART) in its "
                "pointing files; the attitude is unknown"
            )
        i = rows[-1]
        self.ra, self.dec, self.roll = (float(cols[k][i]) for k in ("RA", "DEC", "ROLL"))
        self.tstart, self.tstop = float(cols["TSTART"][i]), float(cols["TSTOP"][i])
        self.ontime = self.tstop - self.tstart
        self.mjdref = float(root.mjdref)


class OpenPointingInfo(PointingInfo):
    """A pointing whose record never closed: its attitude and a provisional span.

    The attitude comes from the record that opened the pointing (``TSTOP <= TSTART``,
    sent as it began); the span runs from that record's ``TSTART`` to where the data
    reach: ``data_stop`` (seconds since MJD 51544 TT, from the daemon's pointing
    tracker, which leaves out a chunk beyond a long gap, such as a clock jump), else the
    latest chunk end of the ISGRI, SPI-ACS and housekeeping roots. ``provisional`` is
    True, and the FITS products say so (``PTGOPEN``). The daemon uses this when the
    grace time hands on a pointing without a closed record; when the closing record
    arrives, the pointing's file set changes and its quick-look runs again on
    ``PointingInfo``, under new signatures. A closed record found here anyway is used
    as ``PointingInfo`` would.
    """

    version = "1"
    input_events = TelemetryFiles
    input_acs = TelemetryFiles
    input_hk = TelemetryFiles
    data_stop: float | None = None

    def main(self) -> None:
        root = self.input_pointing
        cols = root.columns
        ids = [str(p).strip() for p in cols.get("POINTING", ())]
        rows = [i for i, p in enumerate(ids) if p == root.pointing]
        if not rows:
            raise nrt.AnalysisException(
                f"pointing {root.pointing}: no record for it in its pointing files (neither "
                "the opening nor the closing one); the attitude is unknown"
            )
        closed = [i for i in rows if cols["TSTOP"][i] > cols["TSTART"][i]]
        i = (closed or rows)[-1]
        self.ra, self.dec, self.roll = (float(cols[k][i]) for k in ("RA", "DEC", "ROLL"))
        self.mjdref = float(root.mjdref)
        self.tstart = float(cols["TSTART"][i])
        self.provisional = not closed
        if closed:
            self.tstop = float(cols["TSTOP"][i])
        elif self.data_stop is not None:  # on the pointing root's MJDREF
            self.tstop = float(self.data_stop) - (self.mjdref - MJDREF_IJD) * 86400.0
        else:
            data = (self.input_events, self.input_acs, self.input_hk)
            self.tstop = max(
                float(d.tstop) + (float(d.mjdref) - self.mjdref) * 86400.0 for d in data
            )
        if self.tstop <= self.tstart:
            raise nrt.AnalysisException(
                f"pointing {root.pointing}: its record is open and no data reach past its "
                f"start (TSTART {self.tstart}); nothing to look at yet"
            )
        self.ontime = self.tstop - self.tstart


class Spectrum(nrt.Element):
    """Counts spectrum of the pointing in log-spaced calibrated energy bins."""

    version = "1"
    cached = True
    input_events = CalibratedEvents
    input_info = PointingInfo
    emin = 15.0
    emax = 1000.0
    nbins = 256

    def main(self) -> None:
        edges = np.geomspace(self.emin, self.emax, self.nbins + 1)
        counts = np.histogram(self.input_events.energy, edges)[0]
        exposure = self.input_info.ontime
        self.spectrum = Table(
            {
                "CHANNEL": np.arange(1, self.nbins + 1, dtype=np.int16),
                "E_MIN": edges[:-1],
                "E_MAX": edges[1:],
                "COUNTS": counts.astype(np.int64),
                "RATE": counts / exposure,
                "STAT_ERR": np.sqrt(counts) / exposure,
            }
        )
        self.exposure = exposure


class LightCurves(nrt.Element):
    """Count rates in the standard bands, in fixed bins over the pointing."""

    version = "2"
    cached = True
    input_events = CalibratedEvents
    input_info = PointingInfo
    bands = STANDARD_BANDS
    hash_includes = (band_label,)
    bin_seconds = 10.0

    def main(self) -> None:
        info, ev = self.input_info, self.input_events
        nbins = max(1, int(np.ceil(info.ontime / self.bin_seconds)))
        edges = info.tstart + self.bin_seconds * np.arange(nbins + 1)
        widths = np.diff(np.minimum(edges, info.tstop))
        columns = {"TIME": edges[:-1], "TIMEDEL": widths}
        for band in self.bands:
            sel = (ev.energy >= band[0]) & (ev.energy < band[1])
            counts = np.histogram(ev.time[sel], edges)[0]
            label = band_label(band)
            columns[f"RATE_{label}"] = counts / widths
            columns[f"ERROR_{label}"] = np.sqrt(counts) / widths
        self.lightcurves = Table(columns)


class DetectorMap(nrt.Element):
    """Counts per pixel (all events, raw energies): the input of the pixel and module checks."""

    version = "1"
    cached = True
    input_events = TelemetryFiles

    def main(self) -> None:
        cols = self.input_events.columns
        if not len(cols.get("TIME", ())):
            raise nrt.AnalysisException(
                f"no ISGRI events for pointing {self.input_events.pointing}"
            )
        self.counts = codedmask.shadowgram(cols["DETY"], cols["DETZ"]).astype(np.int64)
        self.nevents = int(cols["TIME"].size)


class SkyImage(nrt.Element):
    """Coded-mask image of the pointing in the imaging band, and its brightest sources.

    The shadowgram (noisy and dead pixels replaced by their module level) is
    decoded with the mask (``codedmask.decode``: balanced FFT cross-correlation,
    the same deconvolution the burst localization uses). Sources are the highest
    significance peaks above ``min_significance``, at least ``separation`` sky
    pixels apart, with RA/Dec from the attitude.
    """

    version = "1"
    cached = True
    input_events = CalibratedEvents
    input_info = PointingInfo
    band = IMAGING_BAND
    min_significance = 6.0
    max_sources = 10
    separation = 4

    def main(self) -> None:
        ev, info = self.input_events, self.input_info
        sel = (ev.energy >= self.band[0]) & (ev.energy < self.band[1])
        counts = codedmask.shadowgram(ev.dety[sel], ev.detz[sel])
        image = codedmask.decode(cleaned(counts))
        sig = image.significance
        self.flux = image.flux.astype(np.float32)
        self.variance = image.variance.astype(np.float32)
        self.significance = sig.astype(np.float32)
        attitude = (info.ra, info.dec, info.roll)
        rows = []
        work = sig.copy()
        for _ in range(self.max_sources):
            i, j = np.unravel_index(int(np.argmax(work)), work.shape)
            if work[i, j] < self.min_significance:
                break
            y, z = codedmask.sky_pixel_to_angles(i, j)
            ra, dec = codedmask.instrument_to_radec(y, z, attitude)
            values = (y, z, ra, dec, sig[i, j], image.flux[i, j])
            rows.append((int(i), int(j), *(float(v) for v in values)))
            s = self.separation
            work[max(0, i - s) : i + s + 1, max(0, j - s) : j + s + 1] = -np.inf
        names = ("SKY_Y", "SKY_Z", "Y_DEG", "Z_DEG", "RA", "DEC", "SIGNIFICANCE", "FLUX")
        dtypes = ("i4", "i4", "f8", "f8", "f8", "f8", "f8", "f8")
        self.sources = Table(rows=rows or None, names=names, dtype=dtypes)
        self.image_counts = int(sel.sum())


class AcsSummary(nrt.Element):
    """SPI-ACS rates over the pointing: mean, scatter against Poisson, spikes; 1 s curve."""

    version = "1"
    cached = True
    input_acs = TelemetryFiles
    spike_sigma = 8.0
    curve_seconds = 1.0

    def main(self) -> None:
        cols = self.input_acs.columns
        time, counts = cols.get("TIME", np.empty(0)), cols.get("COUNTS", np.empty(0))
        if time.size < 2:
            raise nrt.AnalysisException(f"no SPI-ACS rates for pointing {self.input_acs.pointing}")
        binw = float(np.median(np.diff(time)))
        mean = float(counts.mean())
        spikes = counts > mean + self.spike_sigma * np.sqrt(max(mean, 1.0))
        clean = counts[~spikes]
        self.bin_seconds = binw
        self.mean_rate = float(clean.mean() / binw)
        # from successive differences: slow trends (orbit, belt ramp) do not count
        self.excess_variance = float(np.diff(clean).var() / 2 / max(clean.mean(), 1e-9))
        self.spikes = int(spikes.sum())
        self.duration = float(time.size * binw)
        self.min_rate = float(counts.min() / binw)
        self.max_rate = float(counts.max() / binw)
        per = max(1, round(self.curve_seconds / binw))
        n = counts.size // per
        self.curve = Table(
            {
                "TIME": time[: n * per : per],
                "RATE": counts[: n * per].reshape(n, per).sum(axis=1) / (per * binw),
            }
        )
