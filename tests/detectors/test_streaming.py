"""Streaming (chunk by chunk) and batch give the same triggers; state stays bounded."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.config import TriggerConfig
from detectors.ratetrigger import RateTrigger, detect
from detectors.simulation import acs_background, burst_profile
from tests.detectors.conftest import run_file


def _stream(time, width, counts, exposure, valid, bin_width, sizes, instrument="X", config=None):
    trig = RateTrigger(instrument, bin_width, config)
    out, a = [], 0
    rng = np.random.default_rng(sizes)
    while a < len(time):
        n = int(rng.integers(1, 3000))
        sl = slice(a, a + n)
        out += trig.push(
            time[sl],
            width if np.isscalar(width) else width[sl],
            counts[sl],
            None if exposure is None else exposure[sl],
            None if valid is None else valid[sl],
        )
        a += n
    return out + trig.flush(), trig


def _sim_with_everything():
    """Spikes, a gap, NaNs, a drop-out, a short and a long burst: all the branches."""
    w = 0.05
    t, c = acs_background(3600.0, w, spike_rate=0.05, seed=11)
    c[20000 : 20000 + 15] += np.round(3000 * burst_profile("short", 0.2, w))
    p = burst_profile("long", 20.0, w)
    c[40000 : 40000 + p.size] += np.round(2e5 * p)
    c[30000:30500] = 0.0  # drop-out
    c[50000:50010] = np.nan
    keep = np.ones(t.size, bool)
    keep[60000:61000] = False  # 50 s hole in time
    return t[keep], w, c[keep]


def test_streaming_equals_batch_on_simulated_data_with_every_feature():
    t, w, c = _sim_with_everything()
    batch = detect(t, w, c, instrument="X")
    assert len(batch) >= 2  # both bursts
    for seed in (1, 2):
        stream, _ = _stream(t, w, c, None, None, w, seed)
        assert [x.to_dict() for x in stream] == [x.to_dict() for x in batch]


@pytest.mark.parametrize("bracket", [False, True])
def test_streaming_equals_batch_on_a_real_file_with_ramp_and_burst(realdata, bracket):
    from detectors.series import from_lightcurve

    cfg = TriggerConfig(bracket=bracket)
    batch, ref, lc = run_file(realdata / "bat_grb100621A_64ms.lc", config=cfg)
    s = from_lightcurve(lc)
    stream, _ = _stream(
        s.time, s.width, s.counts, s.exposure, s.valid, s.bin_width, 5, "BAT", config=cfg
    )
    strip = [{**x.to_dict(), "time_utc": "", "band": None} for x in batch]
    assert [x.to_dict() for x in stream] == strip
    ramp = [x for x in batch if x.time_met < ref - 20]
    assert len(ramp) == 1 and "background_variation" in ramp[0].flags
    assert [x for x in batch if abs(x.time_met - ref) < 8 and not x.flags]


def test_state_is_bounded():
    """After hours of data the engine keeps only its history, not the whole stream."""
    w = 0.05
    t, c = acs_background(4 * 3600.0, w, seed=2)
    _, trig = _stream(t, w, c, None, None, w, 3)
    eng = trig.engine
    assert len(eng.bins["raw"]) < 3 * eng.history + 5000
    assert all(len(sc.res["cum_r"]) < 6 * sc.span + 3000 for sc in eng.scales)


def test_prompt_mode_reports_at_once_then_the_full_trigger():
    w = 0.05
    t, c = acs_background(1200.0, w, spike_rate=0.0, seed=5)
    p = burst_profile("short", 0.2, w)
    c[16000 : 16000 + p.size] += np.round(3000 * p)
    cfg = TriggerConfig(prompt=True)
    seen = []
    trig = RateTrigger("X", w, cfg)
    for a in range(0, t.size, 20):  # 1 s chunks, as the daemon gets them
        seen += [
            (x, t[min(a + 19, t.size - 1)] + w) for x in trig.push(t[a : a + 20], w, c[a : a + 20])
        ]
    seen += [(x, t[-1] + w) for x in trig.flush()]
    assert [x.flags for x, _ in seen] == [("preliminary",), ()]
    (pre, at_pre), (full, at_full) = seen
    assert at_pre - pre.time_met <= 1.0 + 1e-9  # within the chunk that completed it
    assert at_full - full.time_met > 20.0  # the full report waits for the post window
    assert pre.time_met == full.time_met
    batch = detect(t, w, c, instrument="X", config=cfg)
    assert [x.to_dict() for x in batch] == [x.to_dict() for x, _ in seen]
