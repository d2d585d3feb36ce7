"""SIGKILL the daemon at random moments while it works through an inbox; restart each time.

``NRT_FAULT_KILLS`` kills (2 in `make test`, 50 in `make faults`), each after a
random delay (seeded by ``NRT_FAULT_SEED``) drawn over the time an uninterrupted
run needs. The first half of the daemon's lives each get a new slice of the
inbox, so kills land while chunks are read, the stream detectors run and alerts
are committed; the other half restart into the pointing's quick-look and its
cache writes. After the
last restart the run must end exactly as an uninterrupted one did: the same
FITS products (data compared HDU by HDU), the same cache payload checksums for
every signature of the uninterrupted run, the same alert revisions committed and every one delivered
once per id; and `nrt cache verify` finds nothing wrong.
"""

from __future__ import annotations

import random
import time

from tests.daemon.harness import (
    Collector,
    Running,
    alerts_near,
    cache_verify,
    copy_telemetry,
    daemon_config,
    feed,
    unmissable,
    wait_until,
)
from tests.faults.scenario import complete, outcome
from tests.support.services import free_port


def test_sigkill_at_random_moments_then_finish(tmp_path, telemetry, reference, mosquitto, fault):
    sim_dir, truth = telemetry
    _ref_dir, expected = reference
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    config = daemon_config(tmp_path, mosquitto.url, free_port())
    collector = Collector(mosquitto.port, client_id="sigkill-collector")
    rng = random.Random(fault.seed)
    # The first half of the lives each bring a new slice of the inbox (ingest, triggers,
    # outbox commits); the others restart into the quick-look and its cache writes.
    fed_lives = min(fault.kills, max(2, fault.kills // 2))
    slices = [
        files[i * len(files) // fed_lives : (i + 1) * len(files) // fed_lives]
        for i in range(fed_lives)
    ]
    kills, daemon = [], None
    try:
        for life in range(fault.kills):
            daemon = Running(config, tmp_path)
            if life < fed_lives:
                feed(slices[life], tmp_path / "inbox")
            delay = rng.uniform(0.0, 0.5 * expected.seconds)
            time.sleep(delay)
            finished = daemon.process.poll() is not None
            daemon.kill()
            kills.append((round(delay, 2), complete(tmp_path, truth)))
            assert not finished, f"the daemon exited by itself:\n{daemon.log()[-3000:]}"
        daemon = Running(config, tmp_path)
        # Finished: alerts out and the products of the whole pointing (a restart may first
        # hand on a pointing by its grace time with what it had, then again when complete).
        wait_until(
            lambda: complete(tmp_path, truth) and outcome(tmp_path).products == expected.products,
            120,
            "the run to finish after the kills with the products of an uninterrupted run",
            step=1.0,
        )
        assert daemon.stop() == 0
    finally:
        if daemon is not None:
            daemon.kill()
        collector.close()
    landed = sum(not done for _, done in kills)
    print(f"{len(kills)} kills, {landed} before the work was complete:", kills)
    assert landed >= 1, ("kills must land before the work is done, else they test nothing", kills)
    got = outcome(tmp_path)
    assert got.products == expected.products, "FITS products differ from an uninterrupted run"
    # Every result of the uninterrupted run is there with the same payload checksums (more
    # may be: a restart hands a pointing on by its grace time with what it had so far).
    for signature, files in expected.cache.items():
        assert got.cache.get(signature) == files, f"cache entry {signature[:12]} differs"
    assert got.alerts == expected.alerts, "alert revisions differ from an uninterrupted run"
    wait_until(
        lambda: set(collector.alerts()) >= got.alerts, 30, "every revision at the subscriber"
    )
    received = collector.alerts()
    for burst in (b for b in truth["grbs"] if unmissable(b)):
        ids = {a["id"] for a in alerts_near(received, burst["onset"])}
        assert len(ids) == 1, f"burst at {burst['onset']} under several ids: {ids}"
    verify = cache_verify(tmp_path)
    assert verify.returncode == 0 and "0 corrupt" in verify.stdout, verify.stdout + verify.stderr
