"""Bad input: gaps, NaN, zero-width bins, drop-outs, saturation, too-short light curves."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.ratetrigger import detect
from detectors.series import DetectorInputError, prepare
from detectors.simulation import burst_profile
from detectors.trigger import FLAG_BACKGROUND_VARIATION, FLAG_NEAR_GAP, FLAG_SATURATED

W = 0.05


def _run(series):
    return detect(
        series.time,
        series.width,
        series.counts,
        series.exposure,
        series.valid,
        instrument="X",
        bin_width=series.bin_width,
    )


def test_quiet_background_gives_nothing(quiet):
    t, c = quiet
    assert _run(prepare(t, c, W)) == []


def test_gti_gap_and_missing_bins_give_no_edge_trigger(quiet):
    t, c = quiet
    gti = [(t[0], t[6000]), (t[9000], t[-1] + W)]  # bins present but outside the GTIs
    s = prepare(t, c, W, gti=gti)
    assert any("good-time" in n for n in s.notes)
    assert _run(s) == []
    keep = np.ones(t.size, bool)
    keep[12000:14000] = False  # 100 s with no bins at all
    assert _run(prepare(t[keep], c[keep], W)) == []


def test_a_background_step_across_a_gap_is_flagged_not_announced(quiet):
    """The rate may resume 5% higher after a gap: a real change, flagged as such."""
    t, c = quiet
    c = c.copy()
    c[10000:] = np.random.default_rng(5).poisson(1.05 * c[10000:])
    keep = np.ones(t.size, bool)
    keep[9800:10000] = False  # 10 s gap: the background window straddles it
    found = _run(prepare(t[keep], c[keep], W))
    assert found
    for x in found:
        assert {FLAG_NEAR_GAP, FLAG_BACKGROUND_VARIATION} <= set(x.flags), x
    keep[8000:10000] = False  # 100 s gap, longer than the background window: a fresh start
    assert _run(prepare(t[keep], c[keep], W)) == []


def test_nan_bins_are_gaps(quiet):
    t, c = quiet
    c = c.copy()
    c[5000:5040] = np.nan
    c[np.random.default_rng(1).integers(0, c.size, 30)] = np.nan
    s = prepare(t, c, W)
    assert any("NaN" in n for n in s.notes)
    assert _run(s) == []


def test_zero_width_bins_are_dropped_with_a_note(quiet):
    t, c = quiet
    w = np.full(t.size, W)
    w[7000:7010] = 0.0
    s = prepare(t, c, w)
    assert any("zero or negative width" in n for n in s.notes)
    assert _run(s) == []


def test_dropout_to_zero_counts_is_a_gap_not_a_burst_on_return(quiet):
    t, c = quiet
    c = c.copy()
    c[6000:7200] = 0.0  # 60 s of a dead detector, then the counts come back
    assert _run(prepare(t, c, W)) == []
    # and a burst after the drop-out is still seen
    p = burst_profile("short", 0.2, W)
    c[11000 : 11000 + p.size] += np.round(4000 * p)
    found = _run(prepare(t, c, W))
    assert len(found) == 1 and abs(found[0].time_met - t[11007]) < 1.0


def test_saturated_detector_still_triggers_with_a_flag(quiet):
    t, c = quiet
    c = c.copy()
    p = burst_profile("long", 10.0, W)
    c[9000 : 9000 + p.size] += np.round(5e6 * p)
    c = np.minimum(c, 12000.0)  # the electronics cannot count more per bin
    found = _run(prepare(t, c, W))
    assert found and FLAG_SATURATED in found[0].flags


def test_shorter_than_the_background_window_is_a_clear_error(quiet):
    t, c = quiet
    with pytest.raises(DetectorInputError) as err:
        prepare(t[:300], c[:300], W, source="short.lc")
    msg = str(err.value)
    assert msg.startswith("short.lc: TIME: covers 15 s") and "fix:" in msg


def test_time_going_backwards_is_a_clear_error(quiet):
    t, c = quiet
    t = t.copy()
    t[100] = t[50]
    with pytest.raises(DetectorInputError, match="TIME: is not increasing at row 100"):
        prepare(t, c, W, source="x.lc")


def test_no_usable_bin_is_a_clear_error():
    with pytest.raises(DetectorInputError, match="no usable bin"):
        prepare(np.arange(10.0), np.full(10, np.nan), 1.0)
