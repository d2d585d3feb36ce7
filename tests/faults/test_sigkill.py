"""SIGKILL the daemon at random moments while it works through an inbox; restart each time.

``NRT_FAULT_KILLS`` kills (3 in `make test`, 50 in `make faults`), each after a
random delay (seeded by ``NRT_FAULT_SEED``) drawn over the time an uninterrupted
run needs, so kills land while chunks are read, while the stream detectors run,
during outbox commits, cache writes and the pointing's quick-look. After the
last restart the run must end exactly as an uninterrupted one did: the same
FITS products (data compared HDU by HDU), the same cache payload checksums for
every signature, the same alert revisions committed and every one delivered
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
    feed(files, tmp_path / "inbox")  # the backlog a restarted daemon finds
    config = daemon_config(tmp_path, mosquitto.url, free_port())
    collector = Collector(mosquitto.port, client_id="sigkill-collector")
    rng = random.Random(fault.seed)
    kills, daemon = [], None
    try:
        for _ in range(fault.kills):
            daemon = Running(config, tmp_path)
            delay = rng.uniform(0.0, expected.seconds)
            time.sleep(delay)
            finished = daemon.process.poll() is not None
            daemon.kill()
            kills.append((round(delay, 2), complete(tmp_path, truth)))
            assert not finished, f"the daemon exited by itself:\n{daemon.log()[-3000:]}"
        daemon = Running(config, tmp_path)
        wait_until(lambda: complete(tmp_path, truth), 120, "the run to finish after the kills")
        assert daemon.stop() == 0
    finally:
        if daemon is not None:
            daemon.kill()
        collector.close()
    print("kills (delay after READY s, complete at kill):", kills)
    assert sum(not done for _, done in kills) >= min(2, fault.kills), (
        "most kills must land before the work was done, else they test nothing",
        kills,
    )
    got = outcome(tmp_path)
    assert got.products == expected.products, "FITS products differ from an uninterrupted run"
    assert got.cache == expected.cache, "cache payloads differ from an uninterrupted run"
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
