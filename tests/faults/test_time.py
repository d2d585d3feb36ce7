"""Telemetry out of order, duplicated, late, with a clock jump; a pointing that never closes.

- *disorder*: the chunk holding each burst's onset (and a few at random) arrives
  after its successor (0.15 s apart, longer than the inbox's debounce, so the
  daemon really sees them in that order). The running detectors only go forward
  in time and used to skip such a chunk, burst and all; the stream stage now
  looks at it again with fresh detectors over its neighbours;
- *duplicates*: the same bytes again under another name: handled once, counted;
- *late*: the pointing's last imager chunks arrive after its grace time ran out
  (the quick-look ran without them): the pointing is handed on again and its
  products end identical to an uninterrupted run's;
- *clock jump*: an ACS chunk stamped five hours ahead (a corrupted on-board
  clock) arrives mid-stream: the bursts after it must still be alerted (they
  used not to be: every later chunk looked late and was skipped; two chunks in a
  row far behind the newest time now restart the detectors);
- *never closes*: the record closing the pointing does not arrive: the grace time
  hands the pointing to the quick-look anyway, which makes provisional products from
  the chunks there are (attitude from the opening record, TSTOP the last chunk's
  end, ``PTGOPEN = T`` in every header; it used to end as an expected failure, "no
  closed record"). When the closing record finally arrives, the pointing is looked
  at again and its products are rewritten as final (no ``PTGOPEN``).
"""

from __future__ import annotations

import random
import shutil
import time

from astropy.io import fits

from tests.daemon.harness import (
    Running,
    alerts_near,
    chunk_seq,
    copy_telemetry,
    daemon_config,
    feed,
    metric,
    unmissable,
    wait_until,
)
from tests.faults.scenario import complete, outcome
from tests.support.services import free_port


def _burst_seqs(truth) -> set[int]:
    start = truth["pointings"][0]["tstart"]
    return {int((b["onset"] - start) // 5) + 1 for b in truth["grbs"] if unmissable(b)}


def _alerted(tmp_path, truth):
    from tests.daemon.harness import committed_alerts

    alerts = {k: r["alert"] for k, r in committed_alerts(tmp_path).items()}
    return {b["onset"]: alerts_near(alerts, b["onset"]) for b in truth["grbs"] if unmissable(b)}


def test_disorder_duplicates_and_late_chunks(tmp_path, telemetry, reference, mosquitto, fault):
    sim_dir, truth = telemetry
    _ref_dir, expected = reference
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    late = [p for p in files if p.name.startswith("isgri_")][-3:]
    order = [p for p in files if p not in late]
    rng = random.Random(fault.seed)
    # The chunk holding each burst's onset comes after its successor (and a few at random).
    swap = set(_burst_seqs(truth)) | set(rng.sample(range(1, 360), 8))
    inbox = tmp_path / "inbox"
    dup_dir = tmp_path / "dups"
    dup_dir.mkdir()
    dups = []
    for p in rng.sample(order, 6):  # the same bytes under another name
        kind, pointing, seq = p.stem.split("_")
        dups.append(shutil.copy(p, dup_dir / f"{kind}_{pointing}_{int(seq) + 500000:06d}.fits"))
    port = free_port()
    daemon = Running(daemon_config(tmp_path, mosquitto.url, port), tmp_path)
    try:
        acs = [p for p in order if p.name.startswith("acs_")]
        others = [p for p in order if not p.name.startswith("acs_")]
        i = 0
        while i < len(acs):
            if chunk_seq(acs[i]) in swap and i + 1 < len(acs):
                feed([acs[i + 1]], inbox)  # the successor first...
                time.sleep(0.15)
                feed([acs[i]], inbox)  # ...then the chunk itself
                time.sleep(0.15)
                i += 2
            else:
                feed([acs[i]], inbox)
                i += 1
        feed(others, inbox)
        from pathlib import Path

        feed([Path(d) for d in dups], inbox)
        wait_until(
            lambda: (metric(port, 'nrt_quicklook_runs_total{outcome="ok"}') or 0) >= 1,
            60,
            "the quick-look by grace, without the late chunks",
        )
        runs = metric(port, 'nrt_quicklook_runs_total{outcome="ok"}') or 0
        feed(late, inbox)
        wait_until(  # else SIGTERM can come before the daemon takes the late chunks
            lambda: (metric(port, 'nrt_quicklook_runs_total{outcome="ok"}') or 0) > runs,
            60,
            "the quick-look again, with the late chunks",
        )
        wait_until(lambda: complete(tmp_path, truth), 60, "the run to complete")
        dup_count = metric(port, 'nrt_telemetry_files_total{kind="any",outcome="duplicate"}')
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    found = _alerted(tmp_path, truth)
    missed = [onset for onset, near in found.items() if not near]
    assert not missed, f"bursts missed when their chunks came out of order: {missed}"
    assert all(len({a["id"] for a in near}) == 1 for near in found.values())
    assert (dup_count or 0) >= len(dups), "duplicates counted"
    assert outcome(tmp_path).products == expected.products, "late chunks taken into the products"


def _jumped(path, out, hours: float = 5.0):
    """A copy of an ACS chunk stamped `hours` later (TIMEZERO, TSTART, TSTOP), new name."""
    kind, pointing, seq = path.stem.split("_")
    target = out / f"{kind}_{pointing}_{int(seq) + 700000:06d}.fits"
    with fits.open(path) as hdus:
        for hdu in hdus:
            for key in ("TIMEZERO", "TSTART", "TSTOP"):
                if key in hdu.header:
                    hdu.header[key] = float(hdu.header[key]) + hours * 3600
        hdus.writeto(target)
    return target


def test_clock_jump_and_a_pointing_that_never_closes(tmp_path, telemetry, mosquitto):
    sim_dir, truth = telemetry
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    closing = [p for p in files if p.name.startswith("pointing_")][1:]
    files = [p for p in files if p not in closing]  # the pointing stays open forever
    first = min(_burst_seqs(truth))
    cut = next(i for i, p in enumerate(files) if chunk_seq(p) > first + 10)
    (tmp_path / "forged").mkdir()
    jump = _jumped(
        next(p for p in files if p.name.startswith("acs_") and chunk_seq(p) == first + 12),
        tmp_path / "forged",
    )
    # The provisional end: the last chunk's, not the forged one's five hours later.
    last_chunk = max(fits.getheader(p, 1)["TSTOP"] for p in files if p.name[:3] != "poi")
    port = free_port()
    daemon = Running(daemon_config(tmp_path, mosquitto.url, port), tmp_path)
    try:
        feed(files[:cut], tmp_path / "inbox")
        time.sleep(0.3)
        feed([jump], tmp_path / "inbox")
        time.sleep(0.3)
        feed(files[cut:], tmp_path / "inbox")

        def runs(outcome: str) -> float:
            return metric(port, f'nrt_quicklook_runs_total{{outcome="{outcome}"}}') or 0

        wait_until(
            lambda: sum(runs(o) for o in ("ok", "expected_failure", "error")) >= 1,
            60,
            "the open pointing handed on by its grace time",
        )
        assert (runs("ok"), runs("expected_failure"), runs("error")) == (1, 0, 0), daemon.log()[
            -3000:
        ]
        pointing = truth["pointings"][0]
        products = tmp_path / "state" / "products" / pointing["id"]
        provisional = _headers(products)
        assert len(provisional) >= 5, f"products of the open pointing: {sorted(provisional)}"
        for name, header in provisional.items():
            assert header.get("PTGOPEN") is True, f"{name} does not say the pointing is open"
            assert header["TSTOP"] == last_chunk, f"{name}: TSTOP is not the last chunk's end"
        found = _alerted(tmp_path, truth)

        feed(closing, tmp_path / "inbox")  # the record closes after all: looked at again
        wait_until(lambda: runs("ok") >= 2, 60, "the quick-look of the closed pointing")
        final = _headers(products)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    log = daemon.log()
    assert f"pointing {pointing['id']}: its record is not closed" in log
    missed = [onset for onset, near in found.items() if not near]
    assert not missed, f"bursts after a clock jump missed: {missed}\n{log[-2000:]}"
    assert set(final) == set(provisional)
    for name, header in final.items():
        assert "PTGOPEN" not in header, f"{name} still provisional after the record closed"
        assert header["TSTOP"] == pointing["tstop"]
    for product in ("spectrum", "lightcurves", "skyimage"):  # the ones that use the span
        name = f"{pointing['id']}_{product}.fits"
        assert final[name]["NRTSIG"] != provisional[name]["NRTSIG"], f"{name}: same signature"


def _headers(products) -> dict:
    """{file: header of its first extension} of a pointing's FITS products."""
    return {p.name: fits.getheader(p, 1) for p in sorted(products.glob("*.fits"))}
