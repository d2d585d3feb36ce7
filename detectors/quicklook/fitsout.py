"""Quick-look products as FITS files that astropy, ds9 and XSPEC-minded people open.

One file per product, named ``<pointing>_<product>.fits``:

- ``spectrum``: OGIP PHA-like ``SPECTRUM`` table (CHANNEL, COUNTS, STAT_ERR as rate,
  E_MIN/E_MAX) and an ``EBOUNDS`` extension; EXPOSURE in the header.
- ``lightcurves``: OGIP ``RATE`` table with TIME, TIMEDEL and RATE_/ERROR_ per band.
- ``detmap``: the (DETZ rows, DETY columns) counts image of the detector.
- ``skyimage``: ``FLUX``, ``SIGNIFICANCE`` and ``VARIANCE`` images with a TAN WCS from the
  attitude (the decoded sky is exactly gnomonic: one pixel is a fixed step in tan of
  the instrument angles), and the ``SOURCES`` table.
- ``acs``: the 1 s SPI-ACS rate curve and its summary in the header.

Every file carries TELESCOP, INSTRUME, POINTING, MJDREF, TSTART/TSTOP and, per HDU,
``NRTSIG`` (the element signature that produced it) and ``NRTELEM``. Products of a
pointing whose record never closed carry ``PTGOPEN = T`` and ``TSTOPSRC = 'data'``:
provisional, TSTOP is the end of the last chunk; they are written again, without
those keywords, when the closing record arrives.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from nrt.telemetry import codedmask
from nrt.telemetry.formats import atomic_write

if TYPE_CHECKING:
    import nrt
    from detectors.quicklook.graph import Graph


def sky_wcs(ra: float, dec: float, roll: float) -> WCS:
    """WCS of a decoded sky image stored as data[sky_z, sky_y] (FITS axis 1 = instrument +Y).

    The instrument +Z axis has position angle ``roll`` (east of north); +Y is 90 deg
    clockwise from it on the sky (east at roll 0). Plane coordinates are tan(angle).
    """
    step = math.degrees(codedmask.TAN_PER_PIXEL)
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [codedmask.CENTER_SHIFT + 1, codedmask.CENTER_SHIFT + 1]
    # intermediate (east, north) = CD @ (dy, dz) pixels
    w.wcs.cd = np.array([[step * c, step * s], [-step * s, step * c]])
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def _common(header: fits.Header, graph: Graph, element: nrt.Element | None = None) -> None:
    info = graph.PointingInfo
    header["TELESCOP"] = "INTEGRAL"
    header["INSTRUME"] = "ISGRI"
    header["POINTING"] = graph.pointing
    header["TIMESYS"] = "TT"
    header["MJDREFI"] = int(info.mjdref)
    header["MJDREFF"] = info.mjdref - int(info.mjdref)
    header["TSTART"] = info.tstart
    header["TSTOP"] = info.tstop
    header["RA_PNT"] = (info.ra, "pointing RA (deg)")
    header["DEC_PNT"] = (info.dec, "pointing Dec (deg)")
    header["PA_PNT"] = (info.roll, "roll: position angle of +Z (deg)")
    header["CREATOR"] = "nrt quick-look"
    if getattr(info, "provisional", False):
        header["PTGOPEN"] = (True, "pointing record not closed: provisional")
        header["TSTOPSRC"] = ("data", "TSTOP is the end of the last data chunk")
    if element is not None:
        header["NRTELEM"] = type(element).__name__
        header["NRTSIG"] = element.signature


def _table_hdu(table: Table, name: str, graph: Graph, element: nrt.Element) -> fits.BinTableHDU:
    hdu = fits.table_to_hdu(Table(table, copy=False))
    hdu.name = name
    _common(hdu.header, graph, element)
    return hdu


def _write(path: Path, hdus: list[fits.hdu.base.ExtensionHDU], graph: Graph) -> Path:
    primary = fits.PrimaryHDU()
    _common(primary.header, graph)
    from io import BytesIO

    buf = BytesIO()
    fits.HDUList([primary, *hdus]).writeto(buf, checksum=True)
    return atomic_write(path, buf.getvalue())


def write_products(graph: Graph, outdir: Path) -> dict[str, Path]:
    """Write the quick-look FITS files of one pointing into `outdir`; returns them by product."""
    outdir.mkdir(parents=True, exist_ok=True)
    p = graph.pointing
    out: dict[str, Path] = {}

    spec = graph.Spectrum
    t = spec.spectrum
    hdu = _table_hdu(t["CHANNEL", "COUNTS", "STAT_ERR"], "SPECTRUM", graph, spec)
    hdu.header.update(
        {
            "HDUCLASS": "OGIP",
            "HDUCLAS1": "SPECTRUM",
            "HDUCLAS2": "TOTAL",
            "HDUCLAS3": "COUNT",
            "EXPOSURE": spec.exposure,
            "POISSERR": True,
            "DETCHANS": len(t),
            "CHANTYPE": "PI",
            "AREASCAL": 1.0,
            "BACKSCAL": 1.0,
            "CORRSCAL": 0.0,
            "BACKFILE": "none",
            "RESPFILE": "none",
            "ANCRFILE": "none",
        }
    )
    hdu.header["TUNIT3"] = "count/s"
    ebounds = _table_hdu(t["CHANNEL", "E_MIN", "E_MAX"], "EBOUNDS", graph, spec)
    ebounds.header.update({"HDUCLASS": "OGIP", "HDUCLAS1": "RESPONSE", "HDUCLAS2": "EBOUNDS"})
    ebounds.header["TUNIT2"] = "keV"
    ebounds.header["TUNIT3"] = "keV"
    out["spectrum"] = _write(outdir / f"{p}_spectrum.fits", [hdu, ebounds], graph)

    lc = graph.LightCurves
    hdu = _table_hdu(lc.lightcurves, "RATE", graph, lc)
    hdu.header.update(
        {
            "HDUCLASS": "OGIP",
            "HDUCLAS1": "LIGHTCURVE",
            "HDUCLAS2": "TOTAL",
            "TIMEDEL": lc.bin_seconds,
        }
    )
    for i, band in enumerate(lc.bands):
        hdu.header[f"E_MIN{i + 1}"] = band[0]
        hdu.header[f"E_MAX{i + 1}"] = band[1]
    out["lightcurves"] = _write(outdir / f"{p}_lightcurves.fits", [hdu], graph)

    dm = graph.DetectorMap
    img = fits.ImageHDU(np.ascontiguousarray(dm.counts.T).astype(np.int32), name="DETMAP")
    _common(img.header, graph, dm)
    img.header["CTYPE1"], img.header["CTYPE2"] = "DETY", "DETZ"
    img.header["BUNIT"] = "count"
    out["detmap"] = _write(outdir / f"{p}_detmap.fits", [img], graph)

    sky, info = graph.SkyImage, graph.PointingInfo
    header = sky_wcs(info.ra, info.dec, info.roll).to_header()
    hdus: list = []
    for name, data, unit in (
        ("FLUX", sky.flux, "count/pixel"),
        ("SIGNIFICANCE", sky.significance, ""),
        ("VARIANCE", sky.variance, "(count/pixel)**2"),
    ):
        h = fits.ImageHDU(np.ascontiguousarray(np.asarray(data).T), header=header.copy(), name=name)
        _common(h.header, graph, sky)
        h.header["BUNIT"] = unit
        h.header["E_MIN"], h.header["E_MAX"] = sky.band
        hdus.append(h)
    hdus.append(_table_hdu(sky.sources, "SOURCES", graph, sky))
    out["skyimage"] = _write(outdir / f"{p}_skyimage.fits", hdus, graph)

    acs = graph.AcsSummary
    hdu = _table_hdu(acs.curve, "RATE", graph, acs)
    hdu.header["INSTRUME"] = "SPI-ACS"
    hdu.header.update(
        {
            "HDUCLASS": "OGIP",
            "HDUCLAS1": "LIGHTCURVE",
            "TIMEDEL": acs.curve_seconds,
            "MEANRATE": (acs.mean_rate, "count/s, spikes excluded"),
            "EXCESVAR": (acs.excess_variance, "variance / mean of 50 ms counts"),
            "NSPIKES": acs.spikes,
        }
    )
    out["acs"] = _write(outdir / f"{p}_acs.fits", [hdu], graph)
    return out
