"""`nrt replay`: the daemon's code path on a directory, and the summary it prints."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re

from click.testing import CliRunner

from nrt import config as configuration
from nrt.cli import main
from nrt.daemon import Daemon
from tests.daemon.harness import unmissable


def _offline(tmp_path) -> configuration.Config:
    """Defaults, with state under tmp_path, and no inbox, broker or metrics endpoint."""
    config = configuration.load("/dev/null")
    return dataclasses.replace(
        config,
        paths=dataclasses.replace(config.paths, state=str(tmp_path / "state")),
        inbox=dataclasses.replace(config.inbox, enabled=False),
        mqtt=dataclasses.replace(config.mqtt, enabled=False),
        metrics=dataclasses.replace(config.metrics, listen=""),
    )


def test_replay_summary_has_alerts_pointings_latencies_and_cache_reuse(telemetry, tmp_path, caplog):
    directory, truth = telemetry
    caplog.set_level(logging.INFO, logger="nrt.affinity")
    allowed = os.sched_getaffinity(0)
    config = tmp_path / "nrt.toml"
    config.write_text("[mqtt]\nenabled = false\n")  # never the host's broker
    result = CliRunner().invoke(
        main,
        ["replay", str(directory), "--json", "--config", str(config), "--state-dir", str(tmp_path)],
        env={"NRT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.exit_code == 0, result.output
    if len(allowed) > 1:  # [daemon] cpus = "one" (the default): the process kept on one
        assert len(os.sched_getaffinity(0)) == 1
        assert re.search(r"running on CPU \d+ \(\[daemon\] cpus = 'one'\)", caplog.text)
    summary = json.loads(result.output.strip().splitlines()[-1])
    bright = [b for b in truth["grbs"] if unmissable(b)]
    assert bright and len(summary["alerts"]) >= len(bright)
    assert len(summary["latency_ms"]) == len(summary["alerts"])
    assert all(0 <= v < 60_000 for v in summary["latency_ms"])
    pointings = {p["id"] for p in truth["pointings"]}
    assert {p["pointing"] for p in summary["pointings"]} == pointings
    assert all(p["outcome"] == "ok" and p["checks"] for p in summary["pointings"])
    # every pointing ran its graphs, and its health graph reused the quick-look's nodes
    assert summary["cache"]["computed"] >= len(pointings)
    assert summary["cache"]["memory hits"] > 0


def test_replay_text_names_latency_and_reuse_and_memory_lets_finished_pointings_go(
    telemetry, tmp_path, monkeypatch
):
    from nrt.daemon.report import summary_text

    directory, _truth = telemetry
    monkeypatch.setenv("NRT_CACHE_DIR", str(tmp_path / "cache"))
    daemon = Daemon(_offline(tmp_path), replay=directory)
    assert asyncio.run(daemon.run()) == 0
    text = summary_text(daemon.summary)
    assert re.search(r"alert latency, .*: median [\d.]+ ms, max [\d.]+ ms", text), text
    assert re.search(r"cache: \d+ element runs, [1-9]\d* reused \(\d+%; .*memory \d+", text), text
    # the pointings' graphs are done: nothing of theirs is held in memory any longer
    memory = daemon.pointings.cache.memory
    assert len(memory) == 0 and memory.nbytes == 0


def test_replay_reports_a_broken_file_and_replays_the_rest(telemetry, tmp_path, monkeypatch):
    """An archive is not an inbox: a file that does not parse is reported and skipped
    (never moved), and every other chunk is replayed, in read-ahead batches or not."""
    import shutil

    directory, _truth = telemetry
    archive = tmp_path / "archive"
    shutil.copytree(directory, archive)
    files = sorted(archive.glob("*.fits"))
    broken = files[len(files) // 2]
    broken.write_bytes(b"SIMPLE  =  not a FITS file")
    monkeypatch.setenv("NRT_CACHE_DIR", str(tmp_path / "cache"))
    config = _offline(tmp_path)
    config = dataclasses.replace(
        config, quicklook=dataclasses.replace(config.quicklook, enabled=False)
    )
    daemon = Daemon(config, replay=archive)
    assert asyncio.run(daemon.run()) == 0
    assert [path for path, _why in daemon.summary.problems] == [str(broken)]
    assert daemon.summary.chunks == len(files) - 1
    assert broken.exists(), "an archive's files stay where they are"
