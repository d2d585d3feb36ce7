"""Health checks: each anomaly caught by its own check; clean data raise nothing."""

from __future__ import annotations

import numpy as np
import pytest

from checks.base import grade
from detectors.quicklook import build, roots_from_files, run_quicklook
from detectors.quicklook.lines import fit_line
from detectors.quicklook.pixels import find_outliers, pixel_threshold
from nrt.cache import Cache
from tests.quicklook.synth import write_pointing


def statuses(tmp_path, **anomaly) -> dict[str, int]:
    pid = "000200010010"
    files = write_pointing(tmp_path, pid, duration=900, seed=11, **anomaly)
    graph = build(roots_from_files(files)[pid])
    run_quicklook(graph, Cache.open(tmp_path / "c", tmp_path / "s"))
    return {r["check"]: r["status"] for r in graph.target.reports}, graph


CLEAN = {
    c: 0
    for c in (
        "calibration_lines",
        "module_rates",
        "pixels",
        "shield_rate",
        "dead_time",
        "housekeeping",
    )
}


def test_clean_pointing_raises_nothing(tmp_path):
    found, _ = statuses(tmp_path)
    assert found == CLEAN


def test_gain_jump_is_an_alarm_of_the_calibration_check_only(tmp_path):
    found, graph = statuses(tmp_path, gain=1.05)
    assert found == CLEAN | {"calibration_lines": 2}
    report = graph.CalibrationLinesCheck.report
    assert any("position_59.3" in m for m in report["alarms"])


def test_hot_pixel_is_an_alarm_of_the_pixel_check_only(tmp_path):
    found, graph = statuses(tmp_path, hot_pixel=(70, 40))
    assert found == CLEAN | {"pixels": 2}
    hot = [
        it
        for it in graph.PixelCheck.report["items"]
        if it["quantity"] == "hot_pixels" and it["status"]
    ]
    assert [it["module"] for it in hot] == ["5"]  # DETY 70 -> half 1, DETZ 40 -> quarter 1
    assert hot[0]["pixels"] == [[70, 40]]


def test_housekeeping_excursion_is_an_alarm_of_the_hk_check_only(tmp_path):
    found, graph = statuses(tmp_path, hk_excursion="T_DET")
    assert found == CLEAN | {"housekeeping": 2}
    assert any("T_DET" in m for m in graph.HousekeepingCheck.report["alarms"])


def test_grade():
    lim = {"warning": [0, 10], "alarm": [None, 20]}
    assert [grade(v, lim) for v in (5, -1, 15, 25, None)] == [0, 1, 1, 2, 0]
    assert grade(5, None) == 0


def test_line_fit_uncertainties_match_the_scatter():
    rng = np.random.default_rng(7)
    pos, err = [], []
    for _ in range(30):
        continuum = rng.uniform(40, 80, 20000)
        line = rng.normal(59.3, 2.1, 3000)
        fit = fit_line(np.r_[continuum, line], 59.3, sigma_guess=2.2)
        assert fit["ok"]
        pos.append(fit["position"])
        err.append(fit["position_err"])
    pulls = (np.array(pos) - 59.3) / np.array(err)
    assert abs(pulls.mean()) < 0.6  # unbiased (30 draws: mean of pulls ~ +-0.18)
    assert 0.6 < pulls.std() < 1.5  # errors neither over- nor under-stated


def test_line_fit_says_why_when_it_cannot_fit():
    fit = fit_line(np.full(10, 60.0), 59.3)
    assert not fit["ok"] and "10 events" in fit["reason"]


def test_pixel_false_positive_rate_is_as_stated():
    """300 flat Poisson maps: expected 1e-3 false flags per map, 0.3 in total."""
    rng = np.random.default_rng(3)
    flags = 0
    for level in np.linspace(5, 300, 300):
        found = find_outliers(rng.poisson(level, (128, 128)))
        flags += int(found.noisy.sum() + found.dead.sum())
    assert flags <= 3  # P(Poisson(0.3) > 3) < 3e-4
    assert pixel_threshold(1e-3) == pytest.approx(1e-3 / 32768)


def test_pixel_check_finds_dead_and_noisy_pixels():
    rng = np.random.default_rng(4)
    counts = rng.poisson(100, (128, 128))
    counts[3, 4] = 0
    counts[100, 100] = 200
    found = find_outliers(counts)
    assert np.argwhere(found.dead).tolist() == [[3, 4]]
    assert np.argwhere(found.noisy).tolist() == [[100, 100]]
    assert found.dead_sensitive


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gian": {"warning": [0.9, 1.1]}}, r"checks.calibration_lines.gian: unknown key"),
        ({"gain": [0.9, 1.1]}, r"checks.calibration_lines.gain = \[0.9, 1.1\]: must be a table"),
        ({"gain": {"warning": [1.1, 0.9]}}, r"checks.calibration_lines.gain.warning .*low <= high"),
        ({"gain": {"warn": [0.9, 1.1]}}, r"must be a table with 'warning' and/or 'alarm'"),
    ],
)
def test_bad_limits_name_the_key_and_the_fix(overrides, message):
    from checks.limits import LimitsError, limits_for

    with pytest.raises(LimitsError, match=message):
        limits_for("calibration_lines", overrides)


def test_limits_overrides_merge_and_are_validated():
    from checks.limits import LimitsError, limits_for

    hk = limits_for("housekeeping", {"parameters": {"T_DET": {"alarm": [-20, 0]}}})
    assert hk["parameters"]["T_DET"] == {"alarm": [-20, 0]} and "HV_BIAS" in hk["parameters"]
    assert limits_for("pixels", {"hot_factor": 50})["hot_factor"] == 50
    with pytest.raises(LimitsError, match=r"checks.housekeeping.parameters.T_DET.alarm"):
        limits_for("housekeeping", {"parameters": {"T_DET": {"alarm": ["cold", 0]}}})
    with pytest.raises(LimitsError, match=r"checks.pixels.hot_factor = 'x': must be a float"):
        limits_for("pixels", {"hot_factor": "x"})


def test_config_validation_hook_checks_every_table():
    from nrt.plugins import hook

    validate = hook("check_limits")
    validate({"pixels": {"hot_factor": 100.0}, "shield_rate": {"expected_rate": 8.0e4}})
    with pytest.raises(ValueError, match=r"checks.shield_rate: must be a table"):
        validate({"shield_rate": 5})
    with pytest.raises(
        ValueError, match=r"checks.pixel: unknown check; checks are calibration_lines"
    ):
        validate({"pixel": {}})
