"""The ISGRI-like coded-mask imager: geometry, shadows, decoding, sky coordinates.

One module, shared by the simulator (which casts burst photons through the mask) and the
localization detector (which decodes shadowgrams), so both always agree on the instrument.

Geometry (modelled on IBIS/ISGRI, simplified where it does not matter here)::

            mask plane  (x = MASK_DISTANCE_MM)   MASK_PIXELS x MASK_PIXELS at PIXEL_PITCH_MM
      ------[][]  [][][]  []  [][]  ------      open/opaque elements of 2x2 pixels
                    \\    photons from (y, z)
                     \\
      ===============DETECTOR=================   DETECTOR_PIXELS x DETECTOR_PIXELS
                 (x = 0, centred under the mask)

* Detector: 128 x 128 pixels on a 4.6 mm pitch (58.9 cm square), indices ``(DETY, DETZ)``
  both 0..127 along the instrument +Y and +Z axes. Pixels are treated as filling their
  pitch (ISGRI's 4 mm crystals and 0.6 mm gaps are not modelled).
* Mask: a MURA of prime order 67 (open fraction (p^2 - 1) / 2p^2 ~ 0.5), elements of
  2 x 2 detector pixels (9.2 mm), replicated cyclically to 2p - 1 = 133 elements, i.e.
  266 x 266 pixels (1.22 m: about twice the detector), centred 3.2 m above it. Outside the
  mask everything is opaque (the shield).
* Instrument frame: +X is the pointing axis (towards the sky), +Y/+Z the detector axes.
  A source at unit vector v has instrument angles ``y = atan(vY / vX)``,
  ``z = atan(vZ / vX)`` (degrees). Its photons cross the mask at ``d + D tan(angle)`` for
  detector point ``d``: the shadow is the mask shifted by ``-D tan(angle)``.
* Fields of view: the detector is entirely under the mask for shifts up to 69 pixels,
  ``|angle| < atan(69 * 4.6 / 3200)`` = 5.68 deg (the fully coded field, FCFOV; decoding is
  done there); some pixel sees the mask up to 197 pixels, 15.6 deg (zero response).
* Sky resolution: one sky pixel is one detector pixel of shift, 4.6 mm / 3.2 m = 4.94 arcmin
  on axis; the mask element (the angular resolution) is two of them, 9.9 arcmin.
* Attitude: ``(RA, DEC, ROLL)`` in degrees; +X points at (RA, DEC); the instrument frame is
  astropy's ``SkyOffsetFrame(origin=(RA, DEC), rotation=ROLL)``: at ROLL = 0, +Y points east
  and +Z north; the roll turns +Z from north towards east by ROLL (it is the position
  angle of +Z; tested).

Decoding is balanced cross-correlation at pixel resolution: for every sky shift, the mean
counts of pixels under open elements minus the mean under opaque ones, computed for all
shifts at once with FFTs. A point source of ``c`` counts per fully open pixel decodes to
``c`` at its sky pixel, and a flat background decodes to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

DETECTOR_PIXELS = 128
PIXEL_PITCH_MM = 4.6
MASK_DISTANCE_MM = 3200.0
MURA_ORDER = 67
ELEMENT_PIXELS = 2
MASK_ELEMENTS = 2 * MURA_ORDER - 1
MASK_PIXELS = MASK_ELEMENTS * ELEMENT_PIXELS
#: detector pixel i sits under mask pixel i + CENTER_SHIFT for an on-axis source.
CENTER_SHIFT = (MASK_PIXELS - DETECTOR_PIXELS) // 2
SKY_PIXELS = MASK_PIXELS - DETECTOR_PIXELS + 1
#: tan(angle) per pixel of shadow shift.
TAN_PER_PIXEL = PIXEL_PITCH_MM / MASK_DISTANCE_MM
FCFOV_DEG = math.degrees(math.atan(CENTER_SHIFT * TAN_PER_PIXEL))
ZERO_RESPONSE_DEG = math.degrees(math.atan((CENTER_SHIFT + DETECTOR_PIXELS) * TAN_PER_PIXEL))


# --------------------------------------------------------------------------- the mask


def mura(p: int) -> np.ndarray:
    """Basic MURA pattern of prime order ``p`` (True = open), Gottesman & Fenimore (1989)."""
    if p < 3 or any(p % k == 0 for k in range(2, int(p**0.5) + 1)):
        raise ValueError(f"MURA order must be a prime >= 3, not {p}")
    residues = np.zeros(p, dtype=bool)
    residues[(np.arange(1, p) ** 2) % p] = True
    c = np.where(residues, 1, -1)
    c[0] = 0
    a = np.zeros((p, p), dtype=bool)
    a[1:, 0] = True
    outer = np.outer(c, c)[1:, 1:]
    a[1:, 1:] = outer == 1
    return a


@cache
def mask_pattern() -> np.ndarray:
    """The mask at detector-pixel resolution: (MASK_PIXELS, MASK_PIXELS) bool, True = open.

    Indices run along +Y, +Z like the detector's. Read-only (shared).
    """
    basic = mura(MURA_ORDER)
    # cyclic replication to 2p - 1 elements, centred on the basic pattern
    start = MURA_ORDER // 2 + 1
    idx = (np.arange(MASK_ELEMENTS) + start) % MURA_ORDER
    elements = basic[np.ix_(idx, idx)]
    pixels = np.repeat(np.repeat(elements, ELEMENT_PIXELS, axis=0), ELEMENT_PIXELS, axis=1)
    pixels.setflags(write=False)
    return pixels


@cache
def _padded_mask() -> np.ndarray:
    """The mask as float with an opaque border wide enough for any shift in the FOV."""
    pad = DETECTOR_PIXELS + 2
    out = np.zeros((MASK_PIXELS + 2 * pad,) * 2)
    out[pad:-pad, pad:-pad] = mask_pattern()
    out.setflags(write=False)
    return out


def open_fraction() -> float:
    return float(mask_pattern().mean())


# --------------------------------------------------------------------------- shadows


def angles_to_shift(y_deg, z_deg):
    """Shadow shift in detector pixels for instrument angles (degrees); arrays allowed."""
    return (
        np.tan(np.radians(y_deg)) / TAN_PER_PIXEL,
        np.tan(np.radians(z_deg)) / TAN_PER_PIXEL,
    )


def shift_to_angles(sy, sz):
    """Instrument angles (degrees) for a shadow shift in pixels; inverse of angles_to_shift."""
    return (
        np.degrees(np.arctan(np.asarray(sy) * TAN_PER_PIXEL)),
        np.degrees(np.arctan(np.asarray(sz) * TAN_PER_PIXEL)),
    )


def shadow(y_deg: float, z_deg: float) -> np.ndarray:
    """Open fraction of each detector pixel's view of a point source at (y, z) degrees.

    A (128, 128) array in [0, 1], indexed [DETY, DETZ]; exact for sub-pixel shifts (the
    mask pixels and detector pixels are aligned, so the overlap is bilinear). Zero outside
    the field of view. It does not include the cos(off-axis) loss of projected area: see
    :func:`projected_area`.
    """
    sy, sz = angles_to_shift(y_deg, z_deg)
    limit = CENTER_SHIFT + DETECTOR_PIXELS + 1
    if not (abs(sy) < limit and abs(sz) < limit):
        return np.zeros((DETECTOR_PIXELS, DETECTOR_PIXELS))
    pad = DETECTOR_PIXELS + 2
    fy, fz = math.floor(sy), math.floor(sz)
    wy, wz = sy - fy, sz - fz
    y0, z0 = pad + CENTER_SHIFT + fy, pad + CENTER_SHIFT + fz
    m = _padded_mask()
    n = DETECTOR_PIXELS
    a = m[y0 : y0 + n + 1, z0 : z0 + n + 1]
    return (
        (1 - wy) * (1 - wz) * a[:n, :n]
        + wy * (1 - wz) * a[1:, :n]
        + (1 - wy) * wz * a[:n, 1:]
        + wy * wz * a[1:, 1:]
    )


def projected_area(y_deg, z_deg):
    """cos of the off-axis angle: the detector's projected area towards the source."""
    ty, tz = np.tan(np.radians(y_deg)), np.tan(np.radians(z_deg))
    return 1.0 / np.sqrt(1.0 + ty**2 + tz**2)


def fully_coded(y_deg, z_deg):
    """True where the whole detector is under the mask (decodable without edge losses)."""
    sy, sz = angles_to_shift(y_deg, z_deg)
    return (np.abs(sy) <= CENTER_SHIFT) & (np.abs(sz) <= CENTER_SHIFT)


def in_field_of_view(y_deg, z_deg):
    """True where at least part of the detector sees the source through the mask."""
    sy, sz = angles_to_shift(y_deg, z_deg)
    limit = CENTER_SHIFT + DETECTOR_PIXELS
    return (np.abs(sy) < limit) & (np.abs(sz) < limit) & (np.cos(np.radians(y_deg)) > 0)


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class SkyImage:
    """Decoded sky over the fully coded field, indexed [sky_y, sky_z].

    ``flux``: counts per fully open detector pixel; ``variance``: its Poisson variance from
    the same counts; sky pixel ``(i, j)`` is shift ``(i - CENTER_SHIFT, j - CENTER_SHIFT)``.
    """

    flux: np.ndarray
    variance: np.ndarray

    @property
    def significance(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.variance > 0, self.flux / np.sqrt(self.variance), 0.0)

    def peak(self) -> tuple[float, float, float]:
        """(y_deg, z_deg, significance) of the most significant pixel, refined to sub-pixel
        precision by a parabola through its neighbours."""
        sig = self.significance
        i, j = np.unravel_index(int(np.argmax(sig)), sig.shape)
        di = _parabola(sig[i - 1, j], sig[i, j], sig[i + 1, j]) if 0 < i < sig.shape[0] - 1 else 0
        dj = _parabola(sig[i, j - 1], sig[i, j], sig[i, j + 1]) if 0 < j < sig.shape[1] - 1 else 0
        y, z = sky_pixel_to_angles(i + di, j + dj)
        return float(y), float(z), float(sig[i, j])


def _parabola(left: float, mid: float, right: float) -> float:
    denom = left - 2 * mid + right
    return 0.0 if denom >= 0 else float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def sky_pixel_to_angles(i, j):
    """Instrument angles (degrees) of a (possibly fractional) decoded sky pixel."""
    return shift_to_angles(np.asarray(i) - CENTER_SHIFT, np.asarray(j) - CENTER_SHIFT)


def angles_to_sky_pixel(y_deg, z_deg):
    sy, sz = angles_to_shift(y_deg, z_deg)
    return sy + CENTER_SHIFT, sz + CENTER_SHIFT


@cache
def _decoding_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Open/opaque patterns and, per shift, how many detector pixels are open/opaque."""
    from scipy.signal import fftconvolve  # scipy only where decoding happens

    open_ = mask_pattern().astype(float)
    closed = 1.0 - open_
    ones = np.ones((DETECTOR_PIXELS, DETECTOR_PIXELS))
    n_open = fftconvolve(open_, ones, mode="valid")
    n_closed = fftconvolve(closed, ones, mode="valid")
    return open_, closed, np.rint(n_open), np.rint(n_closed)


def decode(shadowgram: np.ndarray) -> SkyImage:
    """Balanced cross-correlation of a (128, 128) counts image with the mask."""
    from scipy.signal import fftconvolve

    counts = np.asarray(shadowgram, dtype=float)
    if counts.shape != (DETECTOR_PIXELS, DETECTOR_PIXELS):
        raise ValueError(f"shadowgram must be {DETECTOR_PIXELS}x{DETECTOR_PIXELS}")
    open_, closed, n_open, n_closed = _decoding_arrays()
    flipped = counts[::-1, ::-1]
    sum_open = fftconvolve(open_, flipped, mode="valid")
    sum_closed = fftconvolve(closed, flipped, mode="valid")
    flux = sum_open / n_open - sum_closed / n_closed
    variance = np.clip(sum_open, 0, None) / n_open**2 + np.clip(sum_closed, 0, None) / n_closed**2
    return SkyImage(flux=flux, variance=variance)


def shadowgram(dety: np.ndarray, detz: np.ndarray) -> np.ndarray:
    """Counts image (128, 128) from event pixel coordinates."""
    flat = np.asarray(dety, dtype=np.int64) * DETECTOR_PIXELS + np.asarray(detz, dtype=np.int64)
    return np.bincount(flat, minlength=DETECTOR_PIXELS**2).reshape(DETECTOR_PIXELS, DETECTOR_PIXELS)


# --------------------------------------------------------------------------- sky coordinates


def _frame(ra: float, dec: float, roll: float):
    import astropy.units as u
    from astropy.coordinates import ICRS, SkyCoord, SkyOffsetFrame

    origin = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame=ICRS())
    return SkyOffsetFrame(origin=origin, rotation=roll * u.deg)


def radec_to_instrument(ra, dec, attitude: tuple[float, float, float]):
    """Instrument angles (y, z) in degrees of sky positions, for attitude (RA, DEC, ROLL).

    Positions behind the instrument (vX <= 0) come out as NaN.
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    sky = SkyCoord(ra=np.asarray(ra) * u.deg, dec=np.asarray(dec) * u.deg, frame="icrs")
    local = sky.transform_to(_frame(*attitude)).cartesian
    x, y, z = (np.asarray(c.value, dtype=float) for c in (local.x, local.y, local.z))
    with np.errstate(divide="ignore", invalid="ignore"):
        ya = np.where(x > 0, np.degrees(np.arctan(y / x)), np.nan)
        za = np.where(x > 0, np.degrees(np.arctan(z / x)), np.nan)
    return ya, za


def instrument_to_radec(y_deg, z_deg, attitude: tuple[float, float, float]):
    """Sky (RA, Dec) in degrees of instrument angles, for attitude (RA, DEC, ROLL)."""
    from astropy.coordinates import CartesianRepresentation, SkyCoord

    ty, tz = np.tan(np.radians(y_deg)), np.tan(np.radians(z_deg))
    norm = np.sqrt(1 + ty**2 + tz**2)
    rep = CartesianRepresentation(1 / norm, ty / norm, tz / norm)
    local = SkyCoord(rep, frame=_frame(*attitude))
    icrs = local.transform_to("icrs")
    return np.asarray(icrs.ra.deg), np.asarray(icrs.dec.deg)
