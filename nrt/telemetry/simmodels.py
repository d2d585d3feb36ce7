"""Physical models behind the simulator: orbit, SPI-ACS rates, ISGRI events, GRBs.

Every number here is a default chosen to look like INTEGRAL to the detectors and checks,
not a calibration. Randomness always comes from a generator passed in, so the simulator
decides the seeding (and with it, determinism).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nrt.telemetry import codedmask

# --------------------------------------------------------------------------- orbit

ORBIT_PERIOD_S = 64 * 3600.0  # INTEGRAL's 2.67-day orbit
BELT_HALF_PHASE = 0.06  # instruments off within +-3.8 h of perigee (radiation belts)
RAMP_AMPLITUDE = 1.0  # background doubles at the belt edge...
RAMP_TAU_S = 3600.0  # ...and falls off with this e-folding time away from it
TREND_AMPLITUDE = 0.03  # slow orbital modulation of the cosmic-ray background


@dataclass(frozen=True)
class Orbit:
    """A highly eccentric orbit; phase 0 is perigee, in the middle of the belt passage."""

    perigee: float  # IJD seconds of one perigee
    period: float = ORBIT_PERIOD_S
    belt_half_phase: float = BELT_HALF_PHASE
    first_revolution: int = 3000

    def phase(self, t):
        return np.mod((np.asarray(t, dtype=float) - self.perigee) / self.period, 1.0)

    def revolution(self, t: float) -> int:
        return self.first_revolution + math.floor((t - self.perigee) / self.period)

    def in_belts(self, t):
        phase = self.phase(t)
        return (phase < self.belt_half_phase) | (phase > 1 - self.belt_half_phase)

    def belt_exit_after(self, t: float) -> float:
        """First time >= t outside the belts."""
        if not self.in_belts(t):
            return t
        k = math.floor((t - self.perigee) / self.period + self.belt_half_phase)
        return self.perigee + (k + self.belt_half_phase) * self.period

    def belt_entry_after(self, t: float) -> float:
        """First time >= t inside the belts."""
        if self.in_belts(t):
            return t
        k = math.floor((t - self.perigee) / self.period)
        return self.perigee + (k + 1 - self.belt_half_phase) * self.period

    def belt_passages(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """(entry, exit) of every belt passage overlapping t0..t1."""
        first = math.floor((t0 - self.perigee) / self.period - self.belt_half_phase)
        out = []
        for k in range(first, first + int((t1 - t0) / self.period) + 3):
            entry = self.perigee + (k - self.belt_half_phase) * self.period
            exit_ = self.perigee + (k + self.belt_half_phase) * self.period
            if exit_ > t0 and entry < t1:
                out.append((entry, exit_))
        return out

    def ramp(self, t):
        """Background factor >= 1 rising towards the radiation belts at both orbit ends."""
        phase = self.phase(t)
        from_belt = (np.minimum(phase, 1 - phase) - self.belt_half_phase) * self.period
        return 1 + RAMP_AMPLITUDE * np.exp(-np.clip(from_belt, 0, None) / RAMP_TAU_S)

    def trend(self, t):
        return 1 + TREND_AMPLITUDE * np.sin(2 * np.pi * self.phase(t))


# --------------------------------------------------------------------------- SPI-ACS

ACS_BIN_S = 0.05
ACS_RATE = 9.0e4  # count/s summed over the 91 BGO crystals
ACS_EXCESS = 1.2  # scatter / Poisson scatter
SPIKES_PER_HOUR = 30.0  # cosmic-ray spikes above SPIKE_MIN_SIGMA
SPIKE_MIN_SIGMA = 3.0
SPIKE_INDEX = 3.0  # dN/dA ~ A^-3: ten times rarer for every 3.2x in amplitude
ACS_ERG_PER_COUNT = 1.5e-10  # erg/cm2 of GRB fluence per ACS count (hard spectra give more)


def acs_counts(
    rng: np.random.Generator,
    t: np.ndarray,
    orbit: Orbit,
    *,
    rate: float = ACS_RATE,
    excess: float = ACS_EXCESS,
    belts: bool = True,
) -> np.ndarray:
    """Background counts in 50-ms bins starting at ``t``: trend, belt ramp, excess scatter."""
    factor = orbit.trend(t + ACS_BIN_S / 2)
    if belts:
        factor = factor * orbit.ramp(t + ACS_BIN_S / 2)
    mean = rate * ACS_BIN_S * factor
    # Poisson on a mean with Gaussian jitter of relative variance (excess^2 - 1) / mean:
    # total variance = mean * excess^2, the measured SPI-ACS behaviour.
    jitter = rng.standard_normal(len(t)) * np.sqrt(max(excess**2 - 1, 0) / mean)
    return rng.poisson(mean * np.clip(1 + jitter, 0, None)).astype(np.int32)


def acs_spikes(
    rng: np.random.Generator,
    nbins: int,
    *,
    rate: float = ACS_RATE,
    per_hour: float = SPIKES_PER_HOUR,
) -> tuple[np.ndarray, np.ndarray]:
    """Single-bin cosmic-ray spikes: (bin indices, extra counts), steep power law in amplitude."""
    n = rng.poisson(per_hour * nbins * ACS_BIN_S / 3600.0)
    where = np.sort(rng.integers(0, nbins, n))
    floor = SPIKE_MIN_SIGMA * math.sqrt(rate * ACS_BIN_S) * ACS_EXCESS
    amplitude = floor * (1 - rng.random(n)) ** (-1 / (SPIKE_INDEX - 1))
    return where, np.rint(np.minimum(amplitude, 1e7)).astype(np.int32)


# --------------------------------------------------------------------------- ISGRI

ISGRI_RATE = 200.0  # background events/s over the detector (modest: an hour is ~0.7M events)
CONTINUUM_INDEX = 1.7
E_MIN, E_MAX = 15.0, 1000.0
LINES = ((59.3, 0.06), (511.0, 0.015))  # (keV, fraction of background events)
NOISY_PIXELS = 4
NOISY_RATE = 1.0  # events/s each, about 80x an ordinary pixel
HOT_PIXEL_RATE = 20.0
MODULES = 8
DEAD_TIME_S = 2e-3  # per event per module: ~5% dead at the default rate, more in bursts
GAIN_DRIFT_PER_DAY = 2e-3
GAIN_ORBITAL = 1e-3
ISGRI_COUNTS_PER_FLUENCE = 1.08e10  # events per erg/cm2, fully open and on axis


def resolution_sigma(energy):
    """ISGRI-like energy resolution (keV, 1 sigma): ~5 keV FWHM at 59 keV."""
    return np.sqrt(1.0 + 0.06 * np.asarray(energy))


def power_law(rng: np.random.Generator, n: int, index: float, lo: float, hi: float) -> np.ndarray:
    """Energies with dN/dE ~ E^-index in [lo, hi] (inverse CDF)."""
    u = rng.random(n)
    if abs(index - 1) < 1e-9:
        return lo * (hi / lo) ** u
    a = 1 - index
    return (lo**a + u * (hi**a - lo**a)) ** (1 / a)


def broken_power_law(
    rng: np.random.Generator, n: int, index1: float, index2: float, brk: float
) -> np.ndarray:
    """GRB-like photon spectrum over E_MIN..E_MAX: index1 below ``brk``, index2 above."""
    brk = min(max(brk, E_MIN * 1.01), E_MAX * 0.99)

    def integral(index: float, lo: float, hi: float) -> float:
        a = 1 - index
        return math.log(hi / lo) if abs(a) < 1e-9 else (hi**a - lo**a) / a

    low = integral(index1, E_MIN, brk) * brk**index1
    high = integral(index2, brk, E_MAX) * brk**index2
    upper = rng.random(n) < high / (low + high)
    out = power_law(rng, n, index1, E_MIN, brk)
    out[upper] = power_law(rng, int(upper.sum()), index2, brk, E_MAX)
    return out


def background_energies(rng: np.random.Generator, n: int) -> np.ndarray:
    """True energies of background events: power-law continuum plus the two lines."""
    energy = power_law(rng, n, CONTINUUM_INDEX, E_MIN, E_MAX)
    pick = rng.random(n)
    start = 0.0
    for line, fraction in LINES:
        chosen = (pick >= start) & (pick < start + fraction)
        energy[chosen] = line
        start += fraction
    return energy


def measured_energies(rng: np.random.Generator, true: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Detector response: Gaussian resolution, then the gain (1 = nominal)."""
    smeared = true + rng.standard_normal(len(true)) * resolution_sigma(true)
    return (np.clip(smeared, 1.0, None) * gain).astype(np.float32)


def dead_fraction(rate):
    """Non-paralysable dead time per module for a total event rate (events/s)."""
    per_module = np.asarray(rate, dtype=float) / MODULES * DEAD_TIME_S
    return per_module / (1 + per_module)


# --------------------------------------------------------------------------- GRBs

SHORT_FRACTION = 0.3
FLUENCE_MIN = 1e-7  # erg/cm2
FLUENCE_MAX = 1e-3
FLUENCE_SLOPE = 1.0  # N(>S) ~ S^-1 (BATSE-like, between faint and Euclidean -3/2)


@dataclass
class Pulse:
    """A Norris et al. (1996/2005) pulse: exp(-tau1/(t-ts) - (t-ts)/tau2) for t > ts."""

    start: float  # s after the burst onset
    tau1: float
    tau2: float
    weight: float  # fraction of the burst fluence

    def profile(self, t: np.ndarray) -> np.ndarray:
        dt = np.asarray(t) - self.start
        out = np.zeros_like(dt, dtype=float)
        pos = dt > 0
        out[pos] = np.exp(-self.tau1 / dt[pos] - dt[pos] / self.tau2)
        return out

    @property
    def peak(self) -> float:
        return self.start + math.sqrt(self.tau1 * self.tau2)

    @property
    def integral(self) -> float:
        """Integral over all time: 2 sqrt(tau1 tau2) K1(2 sqrt(tau1 / tau2))."""
        from scipy.special import k1

        return float(
            2 * math.sqrt(self.tau1 * self.tau2) * k1(2 * math.sqrt(self.tau1 / self.tau2))
        )

    @property
    def end(self) -> float:
        """After this the pulse is below 1e-4 of its peak."""
        return self.peak + 12 * self.tau2


@dataclass
class Grb:
    """One injected burst; ``truth()`` is its entry in truth.json."""

    index: int
    onset: float  # IJD seconds when the first pulse starts
    short: bool
    pulses: list[Pulse]
    fluence: float  # erg/cm2
    ra: float
    dec: float
    index1: float
    index2: float
    epeak: float
    extra: dict = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.onset + max(p.end for p in self.pulses)

    def flux(self, t: np.ndarray) -> np.ndarray:
        """Fraction of the burst's counts per second at IJD times ``t`` (integrates to 1)."""
        out = np.zeros(np.shape(t))
        for pulse in self.pulses:
            out += pulse.weight * pulse.profile(np.asarray(t) - self.onset) / pulse.integral
        return out

    def light_curve(self, edges: np.ndarray) -> np.ndarray:
        """Fraction of the burst's counts in each bin between ``edges`` (IJD s), summing to ~1."""
        sub = 20
        lo, hi = edges[:-1], edges[1:]
        fine = lo[:, None] + (np.arange(sub) + 0.5)[None, :] * ((hi - lo) / sub)[:, None]
        return self.flux(fine).mean(axis=1) * (hi - lo)

    def t90(self) -> tuple[float, float]:
        """(T90, start of T90 after onset) of the noiseless profile."""
        t = self.onset + np.linspace(0, self.end - self.onset, 40001)
        cum = np.cumsum(self.flux(t))
        cum /= cum[-1]
        t05 = t[np.searchsorted(cum, 0.05)]
        t95 = t[np.searchsorted(cum, 0.95)]
        return float(t95 - t05), float(t05 - self.onset)


def draw_grb(rng: np.random.Generator, index: int, onset: float) -> Grb:
    """A burst with a realistic duration class, pulse structure, fluence and position."""
    short = bool(rng.random() < SHORT_FRACTION)
    if short:
        duration = 10 ** rng.normal(-0.35, 0.35)  # T90 ~0.3 s
        count = int(rng.integers(1, 3))
    else:
        duration = 10 ** rng.normal(1.5, 0.4)  # T90 ~25 s
        count = int(rng.integers(1, 7))
    pulses = []
    weights = rng.dirichlet(np.ones(count))
    for k in range(count):
        start = 0.0 if k == 0 else float(rng.uniform(0, 0.6 * duration))
        rise = duration * float(rng.uniform(0.02, 0.12))
        decay = duration * float(rng.uniform(0.08, 0.3))
        pulses.append(
            Pulse(start=start, tau1=rise**2 / decay, tau2=decay, weight=float(weights[k]))
        )
    u = rng.random()
    fluence = FLUENCE_MIN * (1 - u * (1 - (FLUENCE_MIN / FLUENCE_MAX) ** FLUENCE_SLOPE)) ** (
        -1 / FLUENCE_SLOPE
    )
    ra = float(rng.uniform(0, 360))
    dec = float(np.degrees(np.arcsin(rng.uniform(-1, 1))))
    epeak = float(10 ** rng.normal(2.8 if short else 2.3, 0.25))
    index1 = float(rng.normal(0.6 if short else 1.0, 0.2))
    return Grb(index, onset, short, pulses, fluence, ra, dec, index1, 2.4, epeak)


def acs_response(grb: Grb, attitude: tuple[float, float, float] | None) -> float:
    """Relative ACS sensitivity to the burst's direction (weak along the telescope axis)."""
    if attitude is None:
        return 0.8
    from astropy.coordinates import SkyCoord

    sep = SkyCoord(grb.ra, grb.dec, unit="deg").separation(
        SkyCoord(attitude[0], attitude[1], unit="deg")
    )
    along_axis = max(0.0, math.cos(sep.radian))
    return 1.0 - 0.7 * along_axis**4


def burst_pixels(
    rng: np.random.Generator, n: int, y_deg: float, z_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Detector pixels of ``n`` burst photons cast through the mask from (y, z)."""
    weights = codedmask.shadow(y_deg, z_deg).ravel()
    if weights.sum() <= 0 or n == 0:
        return np.zeros(0, np.int16), np.zeros(0, np.int16)
    flat = rng.choice(weights.size, size=n, p=weights / weights.sum())
    return (flat // codedmask.DETECTOR_PIXELS).astype(np.int16), (
        flat % codedmask.DETECTOR_PIXELS
    ).astype(np.int16)
