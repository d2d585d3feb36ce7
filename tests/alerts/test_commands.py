"""`nrt alerts list` and `nrt alerts follow` as users run them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.publish as paho_publish
from click.testing import CliRunner

from nrt.alerts import AlertsConfig, MqttConfig, Outbox, Publisher
from nrt.cli import main
from tests.alerts.conftest import broker_in
from tests.alerts.factory import make_burst
from tests.alerts.test_security import acl_file, password_file
from tests.support.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]


def test_list_shows_every_revision_and_its_delivery(isolated_nrt_dirs) -> None:
    alerts = make_burst(2, 2)

    async def commit_only() -> None:  # no broker: everything stays pending
        publisher = Publisher(AlertsConfig(mqtt=MqttConfig(url="mqtt://127.0.0.1:9")))
        for alert in alerts:
            await publisher.submit(alert)
        await publisher.close()

    runner = CliRunner()
    empty = runner.invoke(main, ["alerts", "list"])
    assert empty.exit_code == 0 and "nothing committed yet" in empty.output
    asyncio.run(commit_only())
    assert (isolated_nrt_dirs["state"] / "alerts-outbox.sqlite").exists()

    # Listing beside a live writer (the daemon) works: WAL, read-only connection.
    writer = Outbox(isolated_nrt_dirs["state"] / "alerts-outbox.sqlite")
    writer.mark_sent("mqtt", [1])
    text = runner.invoke(main, ["alerts", "list"])
    writer.close()
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert len(lines) == len(alerts)
    assert alerts[0].id in lines[0] and "#1" in lines[0] and "mqtt:sent" in lines[0]
    assert "mqtt:pending(0)" in lines[1]

    machine = runner.invoke(main, ["alerts", "list", "--json", "--pending"])
    records = [json.loads(line) for line in machine.output.splitlines()]
    assert [(r["alert"]["id"], r["alert"]["record_number"]) for r in records] == [
        a.key for a in alerts[1:]
    ]
    assert records[0]["delivery"]["mqtt"]["state"] == "pending"
    assert records[0]["alert"] == alerts[1].to_json()


def test_follow_prints_each_revision_once_and_skips_junk(broker: Mosquitto) -> None:
    alerts = make_burst(1, 3)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nrt.cli",
            "alerts",
            "follow",
            "--broker",
            broker.url,
            "--count",
            "3",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while "SUBSCRIBE" not in broker.log():
            assert time.monotonic() < deadline, follower.stderr.read()
            time.sleep(0.05)
        payloads = [json.dumps(a.to_json()) for a in alerts]
        # A duplicate (as after a lost PUBACK) and junk, among the real ones.
        for payload in [payloads[0], payloads[0], "not json", '{"id": 1}', *payloads[1:]]:
            paho_publish.single(
                "nrt/alerts/acs", payload, qos=1, hostname="127.0.0.1", port=broker.port
            )
        out, err = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert out.count("INTEGRAL acs trigger") == 3
    assert [f"record {n}" in block for n, block in enumerate(out.split("\n\n")[:3], 1)] == [
        True
    ] * 3
    assert "RETRACTED" in out
    assert "message on nrt/alerts/acs is not JSON" in err
    assert "not an nrt trigger notice" in err


def test_follow_with_wrong_password_says_so(tmp_path: Path) -> None:
    broker = broker_in(
        tmp_path / "mq",
        password_file=password_file(tmp_path),
        acl_file=acl_file(tmp_path, publisher_may_alert=True),
    ).start()
    try:
        result = CliRunner().invoke(
            main,
            ["alerts", "follow", "--broker", broker.url, "--username", "reader"],
            env={"NRT_MQTT_PASSWORD": "nope"},
        )
    finally:
        broker.stop()
    assert result.exit_code == 1
    assert "rejected the login of user 'reader'" in result.output


def test_list_names_a_damaged_outbox_and_the_fix(tmp_path: Path) -> None:
    damaged = tmp_path / "outbox.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(main, ["alerts", "list", "--outbox", str(damaged)])
    assert result.exit_code == 1
    assert str(damaged) in result.output and "move the file aside" in result.output
