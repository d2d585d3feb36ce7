"""The trigger on every real light curve in shared/realdata at FAR 1/day."""

from __future__ import annotations

import pytest

from detectors.trigger import FLAG_BACKGROUND_VARIATION
from tests.conftest import REALDATA
from tests.detectors.conftest import run_file

FILES = sorted(p.name for p in REALDATA.glob("*") if p.suffix in (".lc", ".fits"))
#: Where the rate ramps before the burst (slew / detector settling), s from TRIGTIME.
#: "Within a few seconds": the trigger fires when the rate crosses; 100621A rises ~5 s before
#: its TRIGTIME.
TOL = 8.0
RAMPS = {"bat_grb050525A_64ms.lc": (-170.0, -140.0), "bat_grb100621A_64ms.lc": (-95.0, -75.0)}


def test_all_eight_bat_files_and_the_acs_file_are_there(realdata):
    assert len(FILES) == 9, FILES


@pytest.mark.parametrize("name", FILES)
def test_burst_found_and_quiet_background_silent(realdata, name):
    triggers, ref, lc = run_file(realdata / name)
    near = [t for t in triggers if abs(t.time_met - ref) <= TOL]
    assert near, f"no trigger within {TOL} s of the burst in {name}: {triggers}"
    best = max(near, key=lambda t: t.significance)
    assert FLAG_BACKGROUND_VARIATION not in best.flags
    assert best.far_per_day < 1e-3
    assert best.instrument == lc.instrument
    assert best.time_utc.startswith(lc.to_time(best.time_met).utc.isot[:19])
    # before the burst: only flagged background variations, and only where the ramps are
    early = [t for t in triggers if t.time_met < ref - 20.0]
    for t in early:
        assert FLAG_BACKGROUND_VARIATION in t.flags, f"false trigger before the burst: {t}"
        lo, hi = RAMPS[name]
        assert lo <= t.time_met - ref <= hi, t


@pytest.mark.parametrize("name", sorted(RAMPS))
def test_ramps_are_reported_as_background_variation(realdata, name):
    triggers, ref, _ = run_file(realdata / name)
    lo, hi = RAMPS[name]
    ramp = [t for t in triggers if lo <= t.time_met - ref <= hi]
    assert len(ramp) == 1, triggers
    assert FLAG_BACKGROUND_VARIATION in ramp[0].flags
    # the burst after the ramp is a separate, unflagged trigger
    burst = [t for t in triggers if abs(t.time_met - ref) <= TOL]
    assert burst and FLAG_BACKGROUND_VARIATION not in burst[0].flags


def test_no_trigger_at_the_data_dropout_of_211211A(realdata):
    """Counts drop to zero ~385 s after the trigger until the end of the file."""
    triggers, _, lc = run_file(realdata / "bat_grb211211A_64ms.lc")
    dead = lc.time[(lc.counts == 0)]
    assert dead.size > 5000  # the file really has the drop-out
    assert not [t for t in triggers if t.time_met >= dead.min() - 1.0]
