"""``nrt simulate``: telemetry as the ground segment would deliver it, with a known truth.

What is written (DESIGN.md section 5), as chunks of ``chunk_seconds`` (5 s) renamed into
``out_dir`` in time order, each released when its interval has ended (``pace``: None = all
at once, 1 = real time, X = X times faster):

* ``pointing``: two records per pointing or slew, both with its attitude: one at its
  start, still open (``TSTOP = TSTART``), and one closing it after its last data chunk. Pointings last 30-60 min, dithered (2.17 deg,
  5x5) around targets that change every few hours; slews of 2-4 min between them are their
  own pointing ids (type digit 1). Ids are ``RRRRPPPPSSSF`` (revolution, pointing number,
  sub-pointing 001 or 002 for the slew, type).
* ``acs``: SPI-ACS-like counts in 50-ms bins (see :mod:`nrt.telemetry.simmodels`).
* ``isgri``: events with gain drift, resolution, noisy pixels and dead time.
* ``hk``: 1-s housekeeping: ``T_DET``, ``T_ELEC`` (deg C), ``HV_BIAS``, ``LV_5V`` (V),
  ``DEADTIME`` (fraction), ``EVT_RATE`` (ISGRI events/s). The gain is not reported: the
  checks must find it from the 59.3 keV line (truth.json has the model).
* Nothing while the satellite crosses the radiation belts (~7.7 h of every 64-h orbit).

GRBs happen at ``grb_rate_per_day`` (Poisson), anywhere on the sky; those inside the
imager's field of view during a pointing (not a slew) cast photons through the coded mask.
Anomalies on request: ``gain_jump``, ``hot_pixel``, ``hk_excursion`` (``name`` or
``name@seconds`` after the start). Everything injected is in ``truth.json`` (written before
the first chunk and completed at the end).

Determinism: every random draw comes from a generator keyed by the seed and by *what* is
drawn (ACS hour block, 5-s cell, burst number), never by wall-clock or call order, so the
same seed gives the same bytes at any pace, and :func:`acs_background` with ``belts=True``
gives the very counts the files hold (without bursts).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nrt.telemetry import codedmask
from nrt.telemetry import simmodels as sm
from nrt.telemetry.formats import MJDREF_IJD, atomic_write, chunk_filename, write_chunk

#: 2026-01-01T00:00:00 TT as INTEGRAL IJD seconds (MJD 61041).
DEFAULT_START = (61041.0 - MJDREF_IJD) * 86400.0
DEFAULT_ORBIT_PHASE = 0.2  # start well clear of the belts
DEFAULT_GRB_RATE = 1.0  # per day
CHUNK_SECONDS = 5.0
ANOMALIES = ("gain_jump", "hot_pixel", "hk_excursion")
_ACS_BLOCK = 72_000  # 1 h of 50-ms bins: the unit of ACS random draws
_KEYS = {"acs": 1, "spikes": 2, "cell": 3, "grb": 4, "schedule": 5, "anomaly": 6, "pixels": 7}


def _rng(seed: int, stream: str, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_KEYS[stream], *key)))


# --------------------------------------------------------------------------- ACS stream


class AcsStream:
    """SPI-ACS background (with spikes) in 50-ms bins from ``start``, in 1-h blocks."""

    def __init__(
        self,
        seed: int,
        start: float,
        orbit: sm.Orbit,
        *,
        belts: bool = True,
        spikes: bool = True,
        rate: float = sm.ACS_RATE,
    ) -> None:
        self.seed, self.start, self.orbit = seed, start, orbit
        self.belts, self.spikes, self.rate = belts, spikes, rate
        self._cache: dict[int, np.ndarray] = {}

    def bin_time(self, index) -> np.ndarray:
        return self.start + np.asarray(index) * sm.ACS_BIN_S

    def spikes_in_block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.spikes:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        where, amp = sm.acs_spikes(_rng(self.seed, "spikes", block), _ACS_BLOCK, rate=self.rate)
        return where + block * _ACS_BLOCK, amp

    def block(self, block: int) -> np.ndarray:
        if block not in self._cache:
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            index = block * _ACS_BLOCK + np.arange(_ACS_BLOCK)
            counts = sm.acs_counts(
                _rng(self.seed, "acs", block),
                self.bin_time(index),
                self.orbit,
                rate=self.rate,
                belts=self.belts,
            )
            where, amp = self.spikes_in_block(block)
            np.add.at(counts, where - block * _ACS_BLOCK, amp)
            self._cache[block] = counts
        return self._cache[block]

    def counts(self, first: int, stop: int) -> np.ndarray:
        """Counts of bins ``first .. stop-1`` (global bin indices from ``start``)."""
        parts = []
        for block in range(first // _ACS_BLOCK, (stop - 1) // _ACS_BLOCK + 1):
            lo = max(first, block * _ACS_BLOCK) - block * _ACS_BLOCK
            hi = min(stop, (block + 1) * _ACS_BLOCK) - block * _ACS_BLOCK
            parts.append(self.block(block)[lo:hi])
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def default_orbit(start: float = DEFAULT_START, phase: float = DEFAULT_ORBIT_PHASE) -> sm.Orbit:
    return sm.Orbit(perigee=start - phase * sm.ORBIT_PERIOD_S)


def acs_background(
    hours: float,
    seed: int,
    *,
    spikes: bool = True,
    belts: bool = False,
    start: float = DEFAULT_START,
    rate: float = sm.ACS_RATE,
) -> np.ndarray:
    """SPI-ACS background counts (int32, 50-ms bins) for ``hours``, without writing files.

    Orbital trend, 1.2x Poisson scatter and cosmic-ray spikes; ``belts=True`` adds the
    radiation-belt ramps (and zero counts inside the belts). Fast: ~1 s per 10 days of
    data on one core. ``simulate`` with the same seed and start writes these very counts.
    """
    stream = AcsStream(seed, start, default_orbit(start), belts=belts, spikes=spikes, rate=rate)
    nbins = round(hours * 3600 / sm.ACS_BIN_S)
    out = np.empty(nbins, dtype=np.int32)
    for block in range(-(-nbins // _ACS_BLOCK)):
        lo, hi = block * _ACS_BLOCK, min(nbins, (block + 1) * _ACS_BLOCK)
        out[lo:hi] = stream.block(block)[: hi - lo]
        stream._cache.clear()
    if belts:
        out[stream.orbit.in_belts(stream.bin_time(np.arange(nbins)) + sm.ACS_BIN_S / 2)] = 0
    return out


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Pointing:
    id: str
    tstart: float
    tstop: float
    ra: float
    dec: float
    roll: float
    slew: bool

    @property
    def attitude(self) -> tuple[float, float, float]:
        return (self.ra, self.dec, self.roll)

    def truth(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tstart": self.tstart,
            "tstop": self.tstop,
            "ra": self.ra,
            "dec": self.dec,
            "roll": self.roll,
            "slew": self.slew,
        }


_DITHER = [(dy, dz) for dz in (-2, -1, 0, 1, 2) for dy in (-2, -1, 0, 1, 2)]
_DITHER_STEP = 2.17  # deg


def plan_pointings(seed: int, start: float, stop: float, orbit: sm.Orbit) -> list[Pointing]:
    """Pointings (30-60 min) and slews (2-4 min) covering start..stop outside the belts."""
    rng = _rng(seed, "schedule")
    out: list[Pointing] = []
    t = float(math.ceil(orbit.belt_exit_after(start) - start)) + start  # whole seconds
    numbers: dict[int, int] = defaultdict(int)
    target, roll, left, dither = None, 0.0, 0, 0
    while t < stop - 1:
        entry = start + math.floor(orbit.belt_entry_after(t) - start)
        if left <= 0:
            target = (float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1)))))
            roll, left, dither = float(rng.uniform(0, 360)), int(rng.integers(4, 13)), 0
        assert target is not None
        dy, dz = _DITHER[dither % len(_DITHER)]
        ra, dec = codedmask.instrument_to_radec(
            dy * _DITHER_STEP, dz * _DITHER_STEP, (target[0], target[1], roll)
        )
        rev = orbit.revolution(t)
        numbers[rev] += 1
        base = f"{rev:04d}{numbers[rev]:04d}"
        end = min(t + round(float(rng.uniform(1800, 3600))), entry, stop)
        out.append(Pointing(base + "0010", t, end, float(ra), float(dec), roll, False))
        dither, left, roll = dither + 1, left - 1, (roll + 0.1) % 360
        t = end
        slew_end = min(t + round(float(rng.uniform(120, 240))), entry, stop)
        if slew_end - t >= 1 and slew_end < entry:
            out.append(Pointing(base + "0021", t, slew_end, float(ra), float(dec), roll, True))
            t = slew_end
        if t >= entry:
            t = start + math.ceil(orbit.belt_exit_after(entry + 1) - start)
    return out


def _record(pointing: Pointing, closed: bool) -> dict[str, list]:
    """A ``pointing`` table row; an open one has TSTOP = TSTART (DESIGN: "record closed")."""
    return {
        "POINTING": [pointing.id],
        "TSTART": [pointing.tstart],
        "TSTOP": [pointing.tstop if closed else pointing.tstart],
        "RA": [pointing.ra],
        "DEC": [pointing.dec],
        "ROLL": [pointing.roll],
    }


def pointing_at(pointings: Sequence[Pointing], t: float) -> Pointing | None:
    for p in pointings:
        if p.tstart <= t < p.tstop:
            return p
    return None


# --------------------------------------------------------------------------- anomalies


def parse_anomalies(specs: Sequence[str] | str | None) -> list[tuple[str, float | None]]:
    """``["gain_jump@1800", "hot_pixel"]`` or ``"gain_jump,hot_pixel"`` -> [(name, offset)]."""
    if not specs:
        return []
    if isinstance(specs, str):
        specs = [specs]
    out = []
    for spec in (s.strip() for item in specs for s in item.split(",")):
        if not spec:
            continue
        name, _, at = spec.partition("@")
        if name not in ANOMALIES:
            raise ValueError(f"unknown anomaly {name!r}: choose from {', '.join(ANOMALIES)}")
        try:
            offset = float(at) if at else None
        except ValueError:
            raise ValueError(f"anomaly {spec!r}: time after '@' must be seconds") from None
        out.append((name, offset))
    return out


@dataclass
class Anomalies:
    gain_jumps: list[tuple[float, float]]  # (time, factor)
    hot_pixels: list[tuple[float, int, int]]  # (time, dety, detz)
    hk_excursions: list[tuple[float, str, float]]  # (time, parameter, delta)

    def gain_factor(self, t: np.ndarray) -> np.ndarray:
        out = np.ones_like(t, dtype=float)
        for when, factor in self.gain_jumps:
            out[t >= when] *= factor
        return out

    def hk_delta(self, t: np.ndarray, parameter: str) -> np.ndarray:
        """Trapezoid: 300 s up, 600 s at ``delta``, 300 s down."""
        out = np.zeros_like(t, dtype=float)
        for when, name, delta in self.hk_excursions:
            if name == parameter:
                x = t - when
                out += delta * np.clip(np.minimum(x / 300.0, (1200.0 - x) / 300.0), 0, 1)
        return out


def _draw_anomalies(
    seed: int, requested: list[tuple[str, float | None]], start: float, stop: float
) -> tuple[Anomalies, list[dict[str, Any]]]:
    rng = _rng(seed, "anomaly")
    anomalies = Anomalies([], [], [])
    truth = []
    for name, offset in requested:
        when = start + (
            offset if offset is not None else float(rng.uniform(0.1, 0.9)) * (stop - start)
        )
        if name == "gain_jump":
            factor = 1.03
            anomalies.gain_jumps.append((when, factor))
            truth.append({"kind": name, "time": when, "factor": factor})
        elif name == "hot_pixel":
            y, z = (int(v) for v in rng.integers(0, codedmask.DETECTOR_PIXELS, 2))
            anomalies.hot_pixels.append((when, y, z))
            truth.append(
                {"kind": name, "time": when, "dety": y, "detz": z, "rate": sm.HOT_PIXEL_RATE}
            )
        else:
            anomalies.hk_excursions.append((when, "T_DET", 6.0))
            truth.append(
                {"kind": name, "time": when, "parameter": "T_DET", "delta": 6.0, "duration": 1200.0}
            )
    return anomalies, truth


# --------------------------------------------------------------------------- the simulation

_SPEC_KEYS = {"at", "fluence", "short", "ra", "dec", "y", "z"}


def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(spec) - _SPEC_KEYS
    if unknown or "at" not in spec:
        raise ValueError(f"injected GRB {spec}: needs 'at', may have {sorted(_SPEC_KEYS)}")
    return spec


def _apply_spec(grb: sm.Grb, spec: dict[str, Any], pointing: Pointing | None) -> None:
    """Override a drawn burst with an injected one's given properties.

    ``at`` (s after the start) is required; ``fluence`` (erg/cm2), ``short`` (bool), and a
    position as ``ra``/``dec`` or as instrument angles ``y``/``z`` (deg, for the pointing
    in progress) are optional.
    """
    if "fluence" in spec:
        grb.fluence = float(spec["fluence"])
    if "short" in spec and bool(spec["short"]) != grb.short:
        scale = 0.01 if spec["short"] else 100.0
        grb.short = bool(spec["short"])
        for pulse in grb.pulses:
            pulse.start, pulse.tau1, pulse.tau2 = (
                pulse.start * scale,
                pulse.tau1 * scale,
                pulse.tau2 * scale,
            )
    if "y" in spec or "z" in spec:
        if pointing is None or pointing.slew:
            raise ValueError(f"injected GRB at {spec['at']} s: y/z need a pointing, not a slew")
        ra, dec = codedmask.instrument_to_radec(
            float(spec.get("y", 0)), float(spec.get("z", 0)), pointing.attitude
        )
        grb.ra, grb.dec = float(ra), float(dec)
    elif "ra" in spec or "dec" in spec:
        grb.ra, grb.dec = float(spec["ra"]), float(spec["dec"])


@dataclass
class _Burst:
    grb: sm.Grb
    first_bin: int
    acs: np.ndarray  # Poisson counts per ACS bin from first_bin
    events: dict[str, np.ndarray]  # ISGRI photons: TIME, E_TRUE, DETY, DETZ
    truth: dict[str, Any]


class Simulation:
    """Everything decided up front from the seed; chunks are then produced lazily."""

    def __init__(
        self,
        hours: float,
        seed: int,
        *,
        grb_rate_per_day: float = DEFAULT_GRB_RATE,
        anomalies: Sequence[str] | str | None = None,
        start: float = DEFAULT_START,
        orbit_phase: float = DEFAULT_ORBIT_PHASE,
        chunk_seconds: float = CHUNK_SECONDS,
        isgri_rate: float = sm.ISGRI_RATE,
        inject: Sequence[dict[str, Any]] = (),
    ) -> None:
        if hours <= 0:
            raise ValueError("hours must be positive")
        steps = chunk_seconds / sm.ACS_BIN_S
        if chunk_seconds <= 0 or abs(steps - round(steps)) > 1e-9:
            raise ValueError("chunk_seconds must be a positive multiple of 0.05 s")
        self.hours, self.seed = hours, int(seed)
        self.start = round(start / sm.ACS_BIN_S) * sm.ACS_BIN_S
        self.stop = self.start + round(hours * 3600.0)
        self.chunk_seconds, self.isgri_rate = chunk_seconds, isgri_rate
        self.grb_rate_per_day = grb_rate_per_day
        self.orbit = default_orbit(self.start, orbit_phase)
        self.acs = AcsStream(self.seed, self.start, self.orbit)
        self.pointings = plan_pointings(self.seed, self.start, self.stop, self.orbit)
        self.anomalies, self.anomaly_truth = _draw_anomalies(
            self.seed, parse_anomalies(anomalies), self.start, self.stop
        )
        pixel_rng = _rng(self.seed, "pixels")
        flat = pixel_rng.choice(codedmask.DETECTOR_PIXELS**2, sm.NOISY_PIXELS, replace=False)
        self.noisy = [(int(f) // 128, int(f) % 128) for f in np.sort(flat)]
        self.bursts = self._draw_bursts(inject)

    # ---------------------------------------------------------------- bursts

    def _draw_bursts(self, inject: Sequence[dict[str, Any]]) -> list[_Burst]:
        rng = _rng(self.seed, "grb")
        span = self.stop - self.start
        n = int(rng.poisson(self.grb_rate_per_day * span / 86400.0))
        onsets = [(float(t), None) for t in rng.uniform(self.start, self.stop, n)]
        onsets += [(self.start + float(_check_spec(s)["at"]), s) for s in inject]
        onsets.sort(key=lambda item: item[0])
        return [self._burst(i, t, spec) for i, (t, spec) in enumerate(onsets)]

    def _burst(self, index: int, onset: float, spec: dict[str, Any] | None = None) -> _Burst:
        rng = _rng(self.seed, "grb", index)
        grb = sm.draw_grb(rng, index, onset)
        pointing = pointing_at(self.pointings, onset)
        if spec is not None:
            _apply_spec(grb, spec, pointing)
        observed = pointing is not None
        attitude = pointing.attitude if pointing else None
        response = sm.acs_response(grb, attitude)
        hardness = 2.0 if grb.short else 1.0
        acs_total = grb.fluence / sm.ACS_ERG_PER_COUNT * hardness * response
        first = math.floor((onset - self.start) / sm.ACS_BIN_S)
        last = math.ceil((grb.end - self.start) / sm.ACS_BIN_S)
        edges = self.acs.bin_time(np.arange(first, last + 1))
        expected = acs_total * grb.light_curve(edges)
        acs = rng.poisson(expected).astype(np.int32)
        y = z = math.nan
        in_fov = fully = False
        isgri_expected = 0.0
        events = {
            "TIME": np.zeros(0),
            "E_TRUE": np.zeros(0),
            "DETY": np.zeros(0, np.int16),
            "DETZ": np.zeros(0, np.int16),
        }
        if pointing is not None and not pointing.slew:
            yy, zz = codedmask.radec_to_instrument(grb.ra, grb.dec, pointing.attitude)
            y, z = float(yy), float(zz)
            if math.isfinite(y) and math.isfinite(z):
                in_fov = bool(codedmask.in_field_of_view(y, z))
                fully = bool(codedmask.fully_coded(y, z))
        if in_fov:
            open_frac = float(codedmask.shadow(y, z).mean())
            isgri_expected = (
                grb.fluence
                * sm.ISGRI_COUNTS_PER_FLUENCE
                * open_frac
                * float(codedmask.projected_area(y, z))
            )
            n = int(rng.poisson(isgri_expected))
            fine = np.linspace(onset, grb.end, 4001)
            cdf = np.concatenate([[0], np.cumsum(grb.light_curve(fine))])
            cdf /= cdf[-1]
            times = np.sort(np.interp(rng.random(n), cdf, fine))
            dety, detz = sm.burst_pixels(rng, n, y, z)
            energy = sm.broken_power_law(rng, n, grb.index1, grb.index2, grb.epeak)
            events = {"TIME": times, "E_TRUE": energy, "DETY": dety, "DETZ": detz}
        t90, t90_start = grb.t90()
        truth = {
            "index": index,
            "onset": onset,
            "peak": onset + max(grb.pulses, key=lambda p: p.weight).peak,
            "t90": t90,
            "t90_start": onset + t90_start,
            "class": "short" if grb.short else "long",
            "injected": spec is not None,
            "pulses": [
                {"start": onset + p.start, "tau1": p.tau1, "tau2": p.tau2, "weight": p.weight}
                for p in grb.pulses
            ],
            "fluence_erg_cm2": grb.fluence,
            "epeak_kev": grb.epeak,
            "ra": grb.ra,
            "dec": grb.dec,
            "observed": observed,
            "pointing": pointing.id if pointing else None,
            "acs_response": response,
            "acs_counts_expected": acs_total,
            "acs_counts": int(acs.sum()),
            "instrument_y": y if math.isfinite(y) else None,
            "instrument_z": z if math.isfinite(z) else None,
            "in_fov": in_fov,
            "fully_coded": fully,
            "isgri_counts_expected": isgri_expected,
            "isgri_counts": len(events["TIME"]),
        }
        return _Burst(grb, first, acs, events, truth)

    # ---------------------------------------------------------------- truth

    def truth(self) -> dict[str, Any]:
        spikes = []
        nbins = round((self.stop - self.start) / sm.ACS_BIN_S)
        for block in range(-(-nbins // _ACS_BLOCK)):
            where, amp = self.acs.spikes_in_block(block)
            for i, a in zip(where.tolist(), amp.tolist(), strict=True):
                t = float(self.acs.bin_time(i))
                if i < nbins and pointing_at(self.pointings, t) is not None:
                    spikes.append({"time": t, "counts": a})
        belts = [
            {"start": entry, "stop": exit_}
            for entry, exit_ in self.orbit.belt_passages(self.start, self.stop)
        ]
        return {
            "seed": self.seed,
            "hours": self.hours,
            "start": self.start,
            "stop": self.stop,
            "mjdref": MJDREF_IJD,
            "timesys": "TT",
            "chunk_seconds": self.chunk_seconds,
            "model": {
                "acs_rate": sm.ACS_RATE,
                "acs_excess": sm.ACS_EXCESS,
                "acs_bin": sm.ACS_BIN_S,
                "spikes_per_hour": sm.SPIKES_PER_HOUR,
                "isgri_rate": self.isgri_rate,
                "lines_kev": [line for line, _ in sm.LINES],
                "gain_drift_per_day": sm.GAIN_DRIFT_PER_DAY,
                "gain_orbital_amplitude": sm.GAIN_ORBITAL,
                "orbit_period": self.orbit.period,
                "perigee": self.orbit.perigee,
                "grb_rate_per_day": self.grb_rate_per_day,
            },
            "radiation_belts": belts,
            "pointings": [p.truth() for p in self.pointings],
            "grbs": [b.truth for b in self.bursts],
            "spikes": spikes,
            "noisy_pixels": [{"dety": y, "detz": z, "rate": sm.NOISY_RATE} for y, z in self.noisy],
            "anomalies": self.anomaly_truth,
        }

    # ---------------------------------------------------------------- chunks

    def gain(self, t: np.ndarray) -> np.ndarray:
        days = (t - self.start) / 86400.0
        orbital = sm.GAIN_ORBITAL * np.sin(2 * np.pi * self.orbit.phase(t))
        return (1 + sm.GAIN_DRIFT_PER_DAY * days + orbital) * self.anomalies.gain_factor(t)

    def chunks(self) -> Iterator[tuple[str, Pointing, float, float, dict[str, np.ndarray]]]:
        """(kind, pointing, tstart, tstop, columns) in delivery order."""
        for pointing in self.pointings:
            # "in progress" at the start (TSTOP = TSTART, with the attitude), closed at the end
            yield "pointing", pointing, pointing.tstart, pointing.tstart, _record(pointing, False)
            c0 = pointing.tstart
            while c0 < pointing.tstop - 1e-6:
                c1 = min(c0 + self.chunk_seconds, pointing.tstop)
                yield "acs", pointing, c0, c1, self._acs(c0, c1)
                events, hk = self._isgri_and_hk(pointing, c0, c1)
                yield "isgri", pointing, c0, c1, events
                yield "hk", pointing, c0, c1, hk
                c0 = c1
            yield "pointing", pointing, pointing.tstart, pointing.tstop, _record(pointing, True)

    def _acs(self, c0: float, c1: float) -> dict[str, np.ndarray]:
        first = round((c0 - self.start) / sm.ACS_BIN_S)
        stop = round((c1 - self.start) / sm.ACS_BIN_S)
        counts = self.acs.counts(first, stop).copy()
        for burst in self.bursts:
            lo, hi = max(first, burst.first_bin), min(stop, burst.first_bin + len(burst.acs))
            if lo < hi:
                counts[lo - first : hi - first] += burst.acs[
                    lo - burst.first_bin : hi - burst.first_bin
                ]
        return {"TIME": self.acs.bin_time(np.arange(first, stop)), "COUNTS": counts}

    def _isgri_and_hk(
        self, pointing: Pointing, c0: float, c1: float
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        rng = _rng(self.seed, "cell", round((c0 - self.start) * 1000))
        span = c1 - c0
        mid = np.array([(c0 + c1) / 2])
        background = self.isgri_rate * float((self.orbit.trend(mid) * self.orbit.ramp(mid))[0])
        n = int(rng.poisson(background * span))
        parts = [
            (
                rng.uniform(c0, c1, n),
                sm.background_energies(rng, n),
                rng.integers(0, 128, n).astype(np.int16),
                rng.integers(0, 128, n).astype(np.int16),
            )
        ]
        hot = [(y, z, sm.NOISY_RATE) for y, z in self.noisy]
        hot += [(y, z, sm.HOT_PIXEL_RATE) for when, y, z in self.anomalies.hot_pixels if c0 >= when]
        for y, z, rate in hot:
            k = int(rng.poisson(rate * span))
            parts.append(
                (
                    rng.uniform(c0, c1, k),
                    rng.uniform(15, 30, k),
                    np.full(k, y, np.int16),
                    np.full(k, z, np.int16),
                )
            )
        for burst in self.bursts:
            ev = burst.events
            if len(ev["TIME"]) and ev["TIME"][0] < c1 and ev["TIME"][-1] >= c0:
                sel = (ev["TIME"] >= c0) & (ev["TIME"] < c1)
                parts.append((ev["TIME"][sel], ev["E_TRUE"][sel], ev["DETY"][sel], ev["DETZ"][sel]))
        times = np.concatenate([p[0] for p in parts])
        order = np.argsort(times, kind="stable")
        times = times[order]
        true_e = np.concatenate([p[1] for p in parts])[order]
        dety = np.concatenate([p[2] for p in parts])[order]
        detz = np.concatenate([p[3] for p in parts])[order]
        # dead time from the incident rate in 1-s bins, then thinning
        seconds = np.arange(c0, c1, 1.0)
        edges = np.append(seconds, c1)
        incident = np.histogram(times, edges)[0] / np.diff(edges)
        dead = sm.dead_fraction(incident)
        slot = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(dead) - 1)
        keep = rng.random(len(times)) >= dead[slot]
        gain = self.gain(times[keep])
        events = {
            "TIME": times[keep],
            "ENERGY": sm.measured_energies(rng, true_e[keep], gain),
            "DETY": dety[keep],
            "DETZ": detz[keep],
        }
        phase = self.orbit.phase(seconds)
        wave = np.sin(2 * np.pi * phase)
        hk = {
            "TIME": seconds,
            "T_DET": -10.0
            + 0.4 * wave
            + 0.03 * rng.standard_normal(len(seconds))
            + self.anomalies.hk_delta(seconds, "T_DET"),
            "T_ELEC": 21.0 + 1.2 * wave + 0.05 * rng.standard_normal(len(seconds)),
            "HV_BIAS": 100.0 + 0.05 * rng.standard_normal(len(seconds)),
            "LV_5V": 5.0 + 0.003 * rng.standard_normal(len(seconds)),
            "DEADTIME": dead,
            "EVT_RATE": np.histogram(events["TIME"], edges)[0] / np.diff(edges),
        }
        return events, hk


def simulate(
    out_dir: Path | str,
    hours: float,
    seed: int,
    grb_rate_per_day: float = DEFAULT_GRB_RATE,
    anomalies: Sequence[str] | str | None = None,
    pace: float | None = None,
    *,
    chunk_seconds: float = CHUNK_SECONDS,
    start: float = DEFAULT_START,
    orbit_phase: float = DEFAULT_ORBIT_PHASE,
    isgri_rate: float = sm.ISGRI_RATE,
    truth_path: Path | str | None = None,
    inject: Sequence[dict[str, Any]] = (),
    progress: Callable[[float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Write simulated telemetry into ``out_dir``; returns the truth (also in truth.json).

    ``pace``: None writes everything at once; otherwise each chunk is released when
    ``(chunk stop - start) / pace`` seconds of wall time have passed (1.0 = real time).
    ``inject`` adds GRBs with given properties (see ``_apply_spec``) to the random ones.
    ``progress`` is called with the fraction of simulated time done.
    """
    if pace is not None and pace <= 0:
        raise ValueError("pace must be positive (1.0 = real time) or None (all at once)")
    sim = Simulation(
        hours,
        seed,
        grb_rate_per_day=grb_rate_per_day,
        anomalies=anomalies,
        start=start,
        orbit_phase=orbit_phase,
        chunk_seconds=chunk_seconds,
        isgri_rate=isgri_rate,
        inject=inject,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth_file = Path(truth_path) if truth_path else out / "truth.json"
    truth = sim.truth()
    _write_json(truth_file, truth)
    seq: dict[tuple[str, str], int] = defaultdict(int)
    files: dict[str, int] = defaultdict(int)
    wall0 = clock()
    for kind, pointing, c0, c1, columns in sim.chunks():
        release = c1  # a chunk leaves when its interval has ended
        if pace is not None:
            delay = wall0 + (release - sim.start) / pace - clock()
            if delay > 0:
                sleep(delay)
        seq[(kind, pointing.id)] += 1
        name = chunk_filename(kind, pointing.id, seq[(kind, pointing.id)])
        write_chunk(out / name, kind, pointing.id, columns, c0, c1, fsync=pace is not None)
        files[kind] += 1
        if progress is not None and kind == "hk":
            progress((c1 - sim.start) / (sim.stop - sim.start))
    truth["files"] = dict(files)
    _write_json(truth_file, truth)
    return truth


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
