"""One chunk that breaks a stage must not stall the daemon: it logs and goes on."""

from __future__ import annotations

import asyncio
import dataclasses

from nrt import config as configuration
from nrt.daemon import Daemon
from nrt.daemon.localization import LocalizationStage


def _replay_config(tmp_path) -> configuration.Config:
    """A replay without broker, metrics endpoint or quick-look: the chunk path only."""
    base = configuration.Config()
    return dataclasses.replace(
        base,
        paths=dataclasses.replace(base.paths, state=str(tmp_path / "s"), cache=str(tmp_path / "c")),
        mqtt=dataclasses.replace(base.mqtt, enabled=False),
        metrics=dataclasses.replace(base.metrics, listen=""),
        quicklook=dataclasses.replace(base.quicklook, enabled=False),
    )


def test_a_failing_stage_does_not_stop_the_consumer(tmp_path, telemetry, monkeypatch, caplog):
    sim_dir, _truth = telemetry
    calls = {"n": 0}
    original = LocalizationStage.add

    def flaky(self, chunk):
        calls["n"] += 1
        if calls["n"] % 50 == 1:
            raise RuntimeError("injected failure")
        return original(self, chunk)

    monkeypatch.setattr(LocalizationStage, "add", flaky)
    config = _replay_config(tmp_path)
    daemon = Daemon(config, replay=sim_dir)
    assert asyncio.run(daemon.run()) == 0
    n_files = len([p for p in sim_dir.iterdir() if p.suffix == ".fits"])
    assert daemon.summary.chunks == n_files
    assert calls["n"] > 50 and "injected failure" in caplog.text
    assert daemon.summary.alerts, "alerts still flow"


def test_a_stuck_consumer_is_noticed_logged_and_the_daemon_exits_1(
    tmp_path, telemetry, monkeypatch, caplog
):
    """The loop turns (the watchdog would be fed) but no chunk is taken: a stall."""
    from nrt.daemon import core, stall
    from nrt.daemon.stream import StreamStage

    sim_dir, _truth = telemetry
    calls = {"n": 0}
    original = StreamStage.feed_many

    async def stuck(self, items):
        calls["n"] += 1
        if calls["n"] == 30:
            await asyncio.Event().wait()  # an await that never returns
        return await original(self, items)

    monkeypatch.setattr(StreamStage, "feed_many", stuck)
    monkeypatch.setattr(stall, "STALL_SECONDS", 2.0)
    monkeypatch.setattr(core, "CHECK_INTERVAL", 0.2)
    config = _replay_config(tmp_path)
    daemon = Daemon(config, replay=sim_dir)
    assert asyncio.run(asyncio.wait_for(daemon.run(), 60)) == 1
    assert daemon.stalled and calls["n"] == 30
    assert "the pipeline is stuck" in caplog.text
    assert "--- task consumer" in caplog.text and "in stuck" in caplog.text, "the stacks say where"
