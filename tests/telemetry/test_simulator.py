"""The simulator: determinism, valid files in time order, pacing, statistics, injections."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nrt.cli import main
from nrt.telemetry import codedmask
from nrt.telemetry import simmodels as sm
from nrt.telemetry.formats import parse_chunk_filename, read_chunk
from nrt.telemetry.simulator import (
    Simulation,
    acs_background,
    default_orbit,
    parse_anomalies,
    simulate,
)


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _chunks(directory: Path, kind: str) -> list:
    chunks = [read_chunk(p) for p in sorted(directory.glob(f"{kind}_*.fits"))]
    return sorted(chunks, key=lambda c: c.tstart)


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    args = {"hours": 0.03, "grb_rate_per_day": 1000.0, "anomalies": "gain_jump,hot_pixel"}
    a = simulate(tmp_path / "a", seed=11, **args)
    b = simulate(tmp_path / "b", seed=11, **args)
    c = simulate(tmp_path / "c", seed=12, **args)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a == b and a["grbs"], "the truth is reproducible and has bursts"
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c") and a["grbs"] != c["grbs"]


def test_paced_delivery_same_bytes_and_in_time_order(tmp_path: Path) -> None:
    """Pacing waits until each chunk's interval has ended, and does not change the data."""
    now = [0.0]
    releases: list[tuple[float, str]] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def clock() -> float:
        return now[0]

    simulate(tmp_path / "fast", 0.02, seed=5)
    truth = simulate(tmp_path / "paced", 0.02, seed=5, pace=10.0, sleep=sleep, clock=clock)
    assert _digest(tmp_path / "fast") == _digest(tmp_path / "paced")
    assert now[0] == pytest.approx(0.02 * 3600 / 10.0)  # ten times faster than real time
    sim = Simulation(0.02, 5)
    for kind, _pointing, _c0, c1, _ in sim.chunks():
        releases.append((c1, kind))
    times = [t for t, _ in releases]
    assert times == sorted(times)
    assert releases[0][1] == releases[-1][1] == "pointing"  # opened first, closed last
    assert truth["files"] == {"pointing": 2, "acs": 15, "isgri": 15, "hk": 15}


def test_every_file_is_a_valid_chunk(tmp_path: Path) -> None:
    truth = simulate(tmp_path, 0.05, seed=2, grb_rate_per_day=200.0)
    files = sorted(tmp_path.glob("*.fits"))
    assert len(files) == sum(truth["files"].values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    pointing_ids = {p["id"] for p in truth["pointings"]}
    for path in files:
        kind, pointing, _ = parse_chunk_filename(path.name)
        chunk = read_chunk(path)  # validates everything
        assert chunk.kind == kind and chunk.pointing == pointing in pointing_ids
        assert chunk.tstop - chunk.tstart <= (5.0 if kind != "pointing" else 3600)
    records = [read_chunk(p) for p in sorted(tmp_path.glob("pointing_*.fits"))]
    for plan in truth["pointings"]:
        mine = [r.columns for r in records if r.pointing == plan["id"]]
        assert [float(r["TSTOP"][0]) for r in mine] == [
            plan["tstart"],
            plan["tstop"],
        ]  # open, closed
        assert all(float(r["RA"][0]) == plan["ra"] for r in mine)
    acs = _chunks(tmp_path, "acs")
    time = np.concatenate([c.columns["TIME"] for c in acs])
    np.testing.assert_allclose(np.diff(time), 0.05, atol=1e-6)  # contiguous 50-ms bins
    assert time[0] == truth["start"] and time[-1] == pytest.approx(truth["stop"] - 0.05)


def test_acs_statistics() -> None:
    counts = acs_background(3.0, seed=7)
    assert counts.dtype == np.int32 and len(counts) == 3 * 72000
    mean_rate = counts.mean() / 0.05
    assert 8.5e4 < mean_rate < 9.5e4
    # scatter: robust width of neighbour differences over the Poisson expectation
    d = np.diff(counts.astype(float))
    robust = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2 * counts.mean())
    assert 1.15 < robust < 1.25
    # spikes: single bins far above their neighbours; 30 per hour above 3 sigma, and
    # N(>A) ~ A^-2, so ~22 in 3 h above 6 sigma and four times fewer above 12 sigma
    sigma = 1.2 * np.sqrt(counts.mean())
    local = counts[1:-1] - 0.5 * (counts[:-2] + counts[2:])
    above6, above12 = np.count_nonzero(local > 6 * sigma), np.count_nonzero(local > 12 * sigma)
    assert 10 < above6 < 40 and above12 < above6 / 2


def test_acs_background_matches_the_files(tmp_path: Path) -> None:
    simulate(tmp_path, 0.01, seed=9, grb_rate_per_day=0.0)
    written = np.concatenate([c.columns["COUNTS"] for c in _chunks(tmp_path, "acs")])
    expected = acs_background(0.01, seed=9, belts=True)
    np.testing.assert_array_equal(written, expected)


def test_orbit_ramp_and_belts() -> None:
    orbit = default_orbit()
    assert orbit.in_belts(orbit.perigee) and not orbit.in_belts(orbit.perigee + orbit.period / 2)
    exit_ = orbit.belt_exit_after(orbit.perigee)
    assert orbit.ramp(exit_ + 1) > 1.9 and orbit.ramp(exit_ + 6 * 3600) < 1.01
    counts = acs_background(70.0, seed=1, belts=True, spikes=False)
    off = counts == 0
    assert 0.10 < off.mean() < 0.14  # ~7.7 h of each 64-h orbit
    # the rate climbs towards the belts at the orbit's end
    edge = np.flatnonzero(np.diff(off.astype(int)) == 1)[0]  # entering the belts
    assert counts[edge - 1200 : edge].mean() > 1.5 * np.median(counts[~off])


def test_injected_bursts_in_acs_and_imaged_by_isgri(tmp_path: Path) -> None:
    inject = [
        {"at": 300.0, "fluence": 3e-6, "short": False, "y": 2.0, "z": -1.0},
        {"at": 600.0, "fluence": 2e-6, "short": True, "y": 0.0, "z": 90.0},  # side-on
    ]
    truth = simulate(tmp_path, 0.2, seed=4, grb_rate_per_day=0.0, inject=inject)
    grb, side = truth["grbs"]
    assert grb["injected"] and grb["in_fov"] and grb["fully_coded"]
    assert grb["instrument_y"] == pytest.approx(2.0) and grb["instrument_z"] == pytest.approx(-1.0)
    assert side["class"] == "short" and not side["in_fov"] and side["isgri_counts"] == 0
    # ACS: the short burst stands far above the background in its T90
    acs = _chunks(tmp_path, "acs")
    t = np.concatenate([c.columns["TIME"] for c in acs])
    c = np.concatenate([c.columns["COUNTS"] for c in acs]).astype(float)
    inside = (t >= side["t90_start"] - 0.05) & (t < side["t90_start"] + side["t90"])
    before = (t < side["onset"] - 10) & (t > side["onset"] - 200)
    excess = c[inside].sum() - c[before].mean() * inside.sum()
    noise = 1.2 * np.sqrt(c[before].mean() * inside.sum())
    assert excess / noise > 20
    assert excess == pytest.approx(0.9 * side["acs_counts"], rel=0.3)
    # ISGRI: decoding the burst interval's shadowgram finds it where it was injected
    events = _chunks(tmp_path, "isgri")
    et = np.concatenate([e.columns["TIME"] for e in events])
    y = np.concatenate([e.columns["DETY"] for e in events])
    z = np.concatenate([e.columns["DETZ"] for e in events])
    burst = (et >= grb["t90_start"]) & (et < grb["t90_start"] + grb["t90"])
    background = (et < grb["onset"] - 10) & (et > grb["onset"] - 290)
    scale = grb["t90"] / 280.0  # background interval is 280 s long
    image = codedmask.shadowgram(y[burst], z[burst]) - scale * codedmask.shadowgram(
        y[background], z[background]
    )
    py, pz, significance = codedmask.decode(image).peak()
    assert significance > 8
    assert abs(py - 2.0) < 0.1 and abs(pz + 1.0) < 0.1
    attitude = next(p for p in truth["pointings"] if p["id"] == grb["pointing"])
    ra, dec = codedmask.instrument_to_radec(
        py, pz, (attitude["ra"], attitude["dec"], attitude["roll"])
    )
    assert abs(ra - grb["ra"]) * np.cos(np.radians(dec)) < 0.15 and abs(dec - grb["dec"]) < 0.15


def test_random_bursts_have_realistic_properties() -> None:
    sim = Simulation(24 * 10, seed=3, grb_rate_per_day=10.0)
    grbs = [b.truth for b in sim.bursts]
    assert 60 < len(grbs) < 140
    short = [g for g in grbs if g["class"] == "short"]
    assert 0.15 < len(short) / len(grbs) < 0.45
    assert (
        np.median([g["t90"] for g in short])
        < 1.0
        < np.median([g["t90"] for g in grbs if g["class"] == "long"])
    )
    fluence = np.array([g["fluence_erg_cm2"] for g in grbs])
    assert fluence.min() >= sm.FLUENCE_MIN and (fluence > 10 * sm.FLUENCE_MIN).mean() < 0.25
    assert all(len(g["pulses"]) >= 1 for g in grbs)
    dec = np.array([g["dec"] for g in grbs])
    assert abs(np.sin(np.radians(dec)).mean()) < 0.2  # isotropic
    assert any(not g["observed"] for g in grbs)  # some fall in the radiation belts


def test_anomalies_are_injected(tmp_path: Path) -> None:
    truth = simulate(
        tmp_path,
        0.5,
        seed=6,
        grb_rate_per_day=0.0,
        anomalies=["gain_jump@900", "hot_pixel@600", "hk_excursion@300"],
    )
    kinds = {a["kind"]: a for a in truth["anomalies"]}
    assert set(kinds) == {"gain_jump", "hot_pixel", "hk_excursion"}
    events = _chunks(tmp_path, "isgri")
    t = np.concatenate([e.columns["TIME"] for e in events])
    energy = np.concatenate([e.columns["ENERGY"] for e in events])
    y = np.concatenate([e.columns["DETY"] for e in events])
    z = np.concatenate([e.columns["DETZ"] for e in events])

    def line_position(sel: np.ndarray) -> float:
        centre = 60.0
        for _ in range(4):  # median in a window that follows the line
            centre = float(np.median(energy[sel & (np.abs(energy - centre) < 5)]))
        return centre

    jump = kinds["gain_jump"]["time"]
    ratio = line_position(t >= jump) / line_position(t < jump)
    assert ratio == pytest.approx(1.03, abs=0.008)
    hot = kinds["hot_pixel"]
    in_pixel = (y == hot["dety"]) & (z == hot["detz"])
    rate_after = np.count_nonzero(in_pixel & (t >= hot["time"])) / (truth["stop"] - hot["time"])
    rate_before = np.count_nonzero(in_pixel & (t < hot["time"])) / (hot["time"] - truth["start"])
    assert rate_after > 15 and rate_before < 1
    hk = _chunks(tmp_path, "hk")
    ht = np.concatenate([h.columns["TIME"] for h in hk])
    tdet = np.concatenate([h.columns["T_DET"] for h in hk])
    start = kinds["hk_excursion"]["time"]
    assert tdet[(ht > start + 400) & (ht < start + 800)].mean() - tdet[ht < start].mean() > 5.5
    assert 0.03 < np.concatenate([h.columns["DEADTIME"] for h in hk]).mean() < 0.08


def test_isgri_spectrum_and_noisy_pixels(tmp_path: Path) -> None:
    truth = simulate(tmp_path, 0.1, seed=8, grb_rate_per_day=0.0)
    events = _chunks(tmp_path, "isgri")
    energy = np.concatenate([e.columns["ENERGY"] for e in events])
    assert 150 < len(energy) / 360 < 220  # ~200/s less ~5% dead time
    hist, edges = np.histogram(energy, bins=np.arange(40, 80, 1.0))
    assert 57 <= edges[np.argmax(hist)] <= 61  # the 59.3 keV line
    high = energy[(energy > 450) & (energy < 570)]
    hist, edges = np.histogram(high, bins=np.arange(450, 571, 8.0))
    assert 495 <= edges[np.argmax(hist)] <= 520  # the 511 keV line
    image = codedmask.shadowgram(
        np.concatenate([e.columns["DETY"] for e in events]),
        np.concatenate([e.columns["DETZ"] for e in events]),
    )
    for pixel in truth["noisy_pixels"]:
        assert image[pixel["dety"], pixel["detz"]] > 20 * np.median(image)


def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hours"):
        Simulation(0, 1)
    with pytest.raises(ValueError, match=r"multiple of 0\.05"):
        Simulation(1, 1, chunk_seconds=0.33)
    with pytest.raises(ValueError, match="unknown anomaly"):
        parse_anomalies("gain_jump,solar_flare")
    with pytest.raises(ValueError, match="seconds"):
        parse_anomalies(["hot_pixel@soon"])
    with pytest.raises(ValueError, match="pace"):
        simulate(tmp_path, 0.01, 1, pace=0)
    with pytest.raises(ValueError, match="needs 'at'"):
        Simulation(0.01, 1, inject=[{"fluence": 1e-6}])
    assert parse_anomalies(["gain_jump@10", "hot_pixel"]) == [
        ("gain_jump", 10.0),
        ("hot_pixel", None),
    ]


def test_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(
        main,
        [
            "simulate",
            str(out),
            "--hours",
            "0.01",
            "--seed",
            "3",
            "--json",
            "--anomalies",
            "gain_jump@5",
            "--grb-rate",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["files"]["acs"] == 8 and summary["anomalies"] == ["gain_jump"]
    assert json.loads((out / "truth.json").read_text())["seed"] == 3
    bad = runner.invoke(main, ["simulate", str(out), "--realtime", "--speed", "3"])
    assert bad.exit_code != 0 and "choose one" in bad.output
    bad = runner.invoke(main, ["simulate", str(out), "--anomalies", "meteor"])
    assert bad.exit_code != 0 and "unknown anomaly" in bad.output


def test_pointing_plan_over_two_orbits() -> None:
    sim = Simulation(140.0, seed=2, grb_rate_per_day=0.0)
    plan, orbit = sim.pointings, sim.orbit
    ids = [p.id for p in plan]
    assert len(ids) == len(set(ids)) and all(len(i) == 12 and i.isdigit() for i in ids)
    for p in plan:
        assert p.tstop > p.tstart
        assert not orbit.in_belts(np.linspace(p.tstart, p.tstop, 50)).any()
        assert (p.id[-4:] == "0021") == p.slew
        cut = orbit.in_belts(p.tstop + 1) or p.tstop == sim.stop  # ended by the belts or the end
        assert p.slew or 1800 <= p.tstop - p.tstart <= 3600 or cut
        assert int(p.id[:4]) == orbit.revolution(p.tstart)
    gaps = [b.tstart - a.tstop for a, b in itertools.pairwise(plan)]
    belt_gaps = [g for g in gaps if g > 0]
    assert all(g > 7 * 3600 for g in belt_gaps) and len(belt_gaps) == 2  # two perigees
    assert {int(i[:4]) for i in ids} == {3000, 3001, 3002}
    truth = sim.truth()
    assert len(truth["radiation_belts"]) == 2
