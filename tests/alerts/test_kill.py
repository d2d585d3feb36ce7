"""SIGKILL the publishing process during a burst of 200 alerts, restart it, repeat:
nothing is lost, order per id holds, duplicates only where the PUBACK was not yet
recorded, and `nrt alerts follow` prints each revision once."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.alerts.factory import make_burst
from tests.alerts.subscriber import Collector
from tests.support.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
N_IDS, PER_ID = 50, 4
TOTAL = N_IDS * PER_ID


def start_publisher(broker: Mosquitto, outbox: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.alerts.burst_publisher",
            broker.url,
            str(outbox),
            str(N_IDS),
            str(PER_ID),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_until(proc: subprocess.Popen, kill_after: int | None) -> str:
    """Read progress; SIGKILL right after the `kill_after`-th submission
    (None: let it finish). Returns the last progress line."""
    last = ""
    for line in proc.stdout:
        last = line.strip()
        if kill_after is not None and last == f"submitted {kill_after}":
            proc.send_signal(signal.SIGKILL)
            break
        if last == "done":
            break
    proc.wait(timeout=60)
    return last


def unacked_keys(outbox: Path) -> set[tuple[str, int]]:
    """Revisions committed but not yet marked sent to MQTT (or not committed at all)."""
    with sqlite3.connect(outbox) as db:
        sent = set(
            db.execute(
                "SELECT a.id, a.record_number FROM alerts a JOIN deliveries d USING (seq)"
                " WHERE d.sink='mqtt' AND d.state='sent'"
            )
        )
    return {a.key for a in make_burst(N_IDS, PER_ID)} - sent


def test_sigkill_during_a_burst_loses_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    kill_points = sorted(rng.sample(range(5, TOTAL + 1), 3))
    context = f"seed {seed}, kill points {kill_points}"
    expected = [a.key for a in make_burst(N_IDS, PER_ID)]
    outbox = tmp_path / "outbox.sqlite"

    raw = Collector("127.0.0.1", broker.port, client_id="kill-raw").start()
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nrt.cli",
            "alerts",
            "follow",
            "--broker",
            broker.url,
            "--json",
            "--session",
            "kill-follow",
            "--count",
            str(TOTAL),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # `follow` subscribes with a persistent session; wait until the broker knows it.
    deadline = time.monotonic() + 20
    while "SUBSCRIBE from kill-follow" not in broker.log():
        assert time.monotonic() < deadline and follower.poll() is None, follower.stderr.read()
        time.sleep(0.05)

    may_repeat: Counter[tuple[str, int]] = Counter()
    try:
        for kill_after in kill_points:
            proc = start_publisher(broker, outbox)
            last = run_until(proc, kill_after)
            assert last == f"submitted {kill_after}", (
                f"{context}: got {last!r}, {proc.stderr.read()}"
            )
            may_repeat.update(unacked_keys(outbox))
        proc = start_publisher(broker, outbox)
        assert run_until(proc, None) == "done", f"{context}: {proc.stderr.read()}"
        raw.wait_for(lambda c: len({m.key for m in c.alerts()}) >= TOTAL, timeout=30)
        out, err = follower.communicate(timeout=30)
    finally:
        raw.stop()
        if follower.poll() is None:
            follower.kill()

    keys = [m.key for m in raw.alerts()]
    print(f"{context}: {len(keys)} received, {len(keys) - len(set(keys))} duplicates")
    assert set(keys) == set(expected), f"{context}: lost {set(expected) - set(keys)}"
    for key, n in Counter(keys).items():
        assert n <= 1 + may_repeat[key], f"{context}: {key} x{n}, its PUBACK had been recorded"
    first_seen = list(dict.fromkeys(keys))
    for alert_id in {i for i, _ in expected}:
        numbers = [n for i, n in first_seen if i == alert_id]
        assert numbers == sorted(numbers), f"{context}: {alert_id} out of order {numbers}"

    followed = [json.loads(line) for line in out.splitlines()]
    followed_keys = [(d["id"], d["record_number"]) for d in followed]
    assert len(followed_keys) == TOTAL and set(followed_keys) == set(expected), err
    assert [k for k in followed_keys if k[0] == expected[0][0]] == sorted(
        k for k in expected if k[0] == expected[0][0]
    )
    # The killed publishers' will said so.
    statuses = [json.loads(m.payload)["status"] for m in raw.on("nrt/status")]
    assert "offline" in statuses[:-1] and statuses[-1] == "offline", statuses
