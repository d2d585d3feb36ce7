"""Authentication, authorization and TLS against a real mosquitto."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nrt.alerts import AlertsConfig, DeliveryTimeout, MqttConfig, Publisher
from tests.alerts.conftest import broker_in
from tests.alerts.factory import make_burst
from tests.alerts.subscriber import Collector
from tests.support.services import require_binary

USERS = {"nrt": "s3cret-publisher", "reader": "reader-pass"}


def password_file(tmp_path: Path) -> Path:
    tool = require_binary("mosquitto_passwd")
    path = tmp_path / "passwords"
    path.write_text("")
    for user, password in USERS.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True)
    return path


def acl_file(tmp_path: Path, *, publisher_may_alert: bool) -> Path:
    rules = ["user nrt", "topic readwrite nrt/status", "topic readwrite nrt/health/#"]
    if publisher_may_alert:
        rules.append("topic write nrt/alerts/#")
    rules += ["", "user reader", "topic read nrt/#"]
    path = tmp_path / "acl"
    path.write_text("\n".join(rules) + "\n")
    return path


def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    broker = broker_in(
        tmp_path / "mq",
        password_file=password_file(tmp_path),
        acl_file=acl_file(tmp_path, publisher_may_alert=True),
    ).start()
    try:
        config = MqttConfig(url=broker.url, username="nrt", password="wrong")
        with pytest.raises(DeliveryTimeout) as caught:
            asyncio.run(
                _publish_with_outbox(config, make_burst(1, 1), tmp_path / "o.sqlite", timeout=1.5)
            )
        message = str(caught.value)
        assert "rejected the login of user 'nrt'" in message
        assert "username and password" in message
        assert "1 alert deliveries still pending" in message
    finally:
        broker.stop()


def test_acl_refusal_is_reported_and_the_alert_kept(tmp_path: Path) -> None:
    """With MQTT 5 mosquitto answers a forbidden publish with PUBACK "Not authorized";
    aiomqtt alone would call that a success."""
    passwords = password_file(tmp_path)
    broker = broker_in(
        tmp_path / "mq",
        password_file=passwords,
        acl_file=acl_file(tmp_path, publisher_may_alert=False),
    ).start()
    alerts = make_burst(2, 1)
    config = MqttConfig(url=broker.url, username="nrt", password=USERS["nrt"])
    outbox = tmp_path / "outbox.sqlite"
    try:
        with pytest.raises(DeliveryTimeout) as caught:
            asyncio.run(_publish_with_outbox(config, alerts, outbox, timeout=1.5))
        message = str(caught.value)
        assert "refused publish to 'nrt/alerts/acs'" in message
        assert "Not authorized" in message and "ACL" in message
    finally:
        broker.stop()
    # Fix the ACL: the kept alerts go out on the next run, to an authorized reader.
    broker = broker_in(
        tmp_path / "mq",
        port=broker.port,
        password_file=passwords,
        acl_file=acl_file(tmp_path, publisher_may_alert=True),
    ).start()
    reader = Collector(
        "127.0.0.1",
        broker.port,
        client_id="reader-1",
        username="reader",
        password=USERS["reader"],
    ).start()
    try:
        asyncio.run(_publish_with_outbox(config, [], outbox, timeout=10))
        reader.wait_for(lambda c: len(c.alerts()) >= len(alerts))
        assert sorted(m.key for m in reader.alerts()) == sorted(a.key for a in alerts)
    finally:
        reader.stop()
        broker.stop()


async def _publish_with_outbox(config, alerts, outbox: Path, timeout: float) -> None:
    async with Publisher(AlertsConfig(mqtt=config, outbox=outbox, retry_max=0.3)) as publisher:
        for alert in alerts:
            await publisher.submit(alert)
        await publisher.flush(timeout=timeout)


def make_ca(tmp_path: Path) -> dict[str, Path]:
    """A test CA and a broker certificate for 127.0.0.1/localhost, made here."""
    try:
        return _make_ca_cryptography(tmp_path)
    except ImportError:
        return _make_ca_openssl(tmp_path)


def _make_ca_cryptography(tmp_path: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("nrt test CA"))
        .issuer_name(name("nrt test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {k: tmp_path / f"{k}.pem" for k in ("cafile", "certfile", "keyfile")}
    paths["cafile"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["certfile"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["keyfile"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _make_ca_openssl(tmp_path: Path) -> dict[str, Path]:
    openssl = shutil.which("openssl") or require_binary("openssl")
    ca_key, ca, key, csr, cert = (
        tmp_path / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = tmp_path / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=nrt test CA",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=localhost",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return {"cafile": ca, "certfile": cert, "keyfile": key}


def test_tls_with_a_test_ca(tmp_path: Path) -> None:
    tls = make_ca(tmp_path)
    broker = broker_in(tmp_path / "mq", tls=tls).start()
    assert broker.url.startswith("mqtts://")
    alerts = make_burst(2, 2)
    try:
        import ssl

        reader = Collector(
            "127.0.0.1",
            broker.port,
            client_id="tls-reader",
            tls_context=ssl.create_default_context(cafile=str(tls["cafile"])),
        ).start()
        asyncio.run(
            _publish_with_outbox(
                MqttConfig(url=broker.url, ca_file=tls["cafile"]),
                alerts,
                tmp_path / "tls.sqlite",
                timeout=10,
            )
        )
        reader.wait_for(lambda c: len(c.alerts()) >= len(alerts))
        reader.stop()
        keys = [m.key for m in reader.alerts()]
        assert sorted(keys) == sorted(a.key for a in alerts)
        assert json.loads(reader.alerts()[0].payload)["$schema"].startswith("urn:nrt:")

        # Without our CA the system trust store must refuse the broker, clearly.
        with pytest.raises(DeliveryTimeout, match=r"CERTIFICATE_VERIFY_FAILED.*ca_file"):
            asyncio.run(
                _publish_with_outbox(
                    MqttConfig(url=broker.url),
                    make_burst(1, 1),
                    tmp_path / "no-ca.sqlite",
                    timeout=1.5,
                )
            )
    finally:
        broker.stop()
