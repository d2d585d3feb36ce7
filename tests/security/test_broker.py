"""The documented production MQTT setup, with the real daemon: TLS, logins, per-user ACLs.

mosquitto runs deploy/mosquitto/nrt.conf and nrt.acl (tests/security/broker.py swaps only
paths and port); the test CA and certificates are made with openssl and the password file
with mosquitto_passwd. The daemon (`nrt run`, at DEBUG) connects with `ca_file`,
`username`, `password_file`, `cert_file` and `key_file`. Checked: alerts and health reach
a read-only subscriber; the producer's telemetry over MQTT reaches the daemon; a login
without ACL entries gets nothing; an anonymous client is refused; a subscriber cannot
inject a forged alert; and neither the password nor the TLS key (its path or its content)
appears in the daemon's logs or in its /metrics exposition.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

from nrt.telemetry.formats import chunk_filename
from nrt.telemetry.simulator import simulate
from tests.daemon.harness import Notifications, daemon_config, start_daemon, wait_until
from tests.fuzz.seeds import chunks
from tests.security.broker import USERS, DeployedBroker, password_file
from tests.security.pki import make_pki
from tests.support.services import free_port


class Client:
    """A paho MQTT 5 client over TLS that records what happens to it."""

    def __init__(self, port: int, ca: Path, user: str | None, password: str | None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.connect_rc: mqtt.ReasonCode | None = None
        self.suback: list = []
        self.puback: dict[int, mqtt.ReasonCode] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv5,
        )  # fmt: skip
        if user:
            self.client.username_pw_set(user, password)
        self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.suback.extend(codes)
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        self.connect_rc = rc

    def _on_publish(self, client, userdata, mid, rc, props) -> None:
        self.puback[mid] = rc

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def topics(self, prefix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t.startswith(prefix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_production_broker_tls_acls_and_no_secret_leaks(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    passwords = {user: f"{user}-{secrets.token_urlsafe(12)}" for user in USERS}
    files = {**pki, "passwords": password_file(tmp_path / "passwd", passwords)}
    broker = DeployedBroker(tmp_path / "mq", files=files).start()

    sim = tmp_path / "sim"
    truth = simulate(sim, 0.2, 5, grb_rate_per_day=0.0,
                     inject=[{"at": 420.0, "fluence": 3e-5, "short": True}])  # fmt: skip
    assert len(truth["grbs"]) == 1
    (tmp_path / "inbox").mkdir()
    secret_file = tmp_path / "mqtt-password"
    secret_file.write_text(passwords["nrt"] + "\n")
    secret_file.chmod(0o600)
    metrics_port = free_port()
    config = daemon_config(tmp_path, broker.url, metrics_port, '[logging]\nlevel = "DEBUG"\n')
    config.write_text(
        config.read_text().replace(
            "[mqtt]\n",
            f'[mqtt]\nusername = "nrt"\npassword_file = "{secret_file}"\n'
            f'ca_file = "{pki["ca.crt"]}"\ncert_file = "{pki["client.crt"]}"\n'
            f'key_file = "{pki["client.key"]}"\n',
        )
    )
    log = tmp_path / "daemon.log"
    ca = pki["ca.crt"]
    reader = Client(broker.port, ca, "subscriber", passwords["subscriber"])
    intruder = Client(broker.port, ca, "intruder", passwords["intruder"])
    anonymous = Client(broker.port, ca, None, None)
    producer = Client(broker.port, ca, "producer", passwords["producer"])
    notify = Notifications(tmp_path / "notify.sock")
    daemon = start_daemon(config, notify.path, log=log)
    try:
        wait_until(lambda: reader.connect_rc is not None and intruder.connect_rc is not None,
                   20, "the subscribers' logins")  # fmt: skip
        assert not reader.connect_rc.is_failure and not intruder.connect_rc.is_failure
        reader.client.subscribe([("nrt/alerts/#", 1), ("nrt/health/#", 1), ("nrt/status", 1)])
        intruder.client.subscribe([("nrt/#", 1), ("#", 1)])
        notify.wait_for("READY=1", timeout=60)

        # the ground segment's telemetry over MQTT, as the producer user
        payload = chunks()["hk"]
        props = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
        props.UserProperty = ("filename", chunk_filename("hk", "025600010010", 1))
        producer.client.publish("nrt/telemetry/hk", payload, qos=1, properties=props)
        for path in sorted(p for p in sim.glob("*.fits")):
            path.rename(tmp_path / "inbox" / path.name)

        def alerted() -> list[dict]:
            return [json.loads(p) for p in reader.topics("nrt/alerts/") if p.startswith(b"{")]

        alerts = wait_until(alerted, 90, "an alert at the subscriber")
        assert all(a["alert_tense"] == "test" for a in alerts)
        wait_until(lambda: reader.topics("nrt/status"), 10, "the retained status")
        received = tmp_path / "state" / "received"
        wait_until(lambda: list(received.rglob("*.fits")), 20, "the MQTT chunk at the daemon")

        # a subscriber may not publish a forged alert; a login without rights gets nothing
        info = reader.client.publish("nrt/alerts/acs", b'{"forged": true}', qos=1)
        wait_until(lambda: info.mid in reader.puback, 10, "the broker's answer to a forgery")
        assert reader.puback[info.mid].is_failure, reader.puback[info.mid]
        time.sleep(1.0)
        assert not [p for p in reader.topics("nrt/alerts/") if b"forged" in p]
        assert intruder.messages == [], intruder.messages[:3]
        assert anonymous.connect_rc is not None and anonymous.connect_rc.is_failure
        exposition = _metrics(metrics_port)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        notify.close()
        for client in (reader, intruder, anonymous, producer):
            client.close()
        broker.stop()
    assert code == 0
    text = log.read_text()
    assert "DEBUG" in text, "the daemon did not log at DEBUG: the leak check would be empty"
    key_body = pki["client.key"].read_text().splitlines()[1]
    for secret in (passwords["nrt"], str(pki["client.key"]), key_body):
        assert secret not in text, "a secret reached the daemon's log"
        assert secret not in exposition, "a secret reached /metrics"
    assert "nrt_alerts_total" in exposition
