"""MQTT plumbing shared by the publisher and `nrt alerts follow`: configuration,
topics and message properties (DESIGN.md section 7), and a client that reports
what the broker refused.

aiomqtt (2.x) completes a QoS 1 publish on any PUBACK and drops the PUBACK's
reason code, so a broker ACL that forbids the topic would look like success.
`CheckedClient` keeps those reason codes and `publish_checked` raises
`PublishRefused` for them: a refused alert stays in the outbox and is reported.

aiomqtt 2.x also fails a publish still awaiting its PUBACK only at its timeout
(10 s), even once the connection is known to be lost, and waits out the same
timeout when the broker's side closes a connection before its CONNACK. With no
public hook for either (aiomqtt 2.5.1, the last 2.x; 3.0 is an alpha on another
protocol library), `CheckedClient` watches aiomqtt's private ``_disconnected``
future (and, through `nrt.mqttlink.PromptClient`, its ``_connected`` future) and
raises `ConnectionLost` at once: the publisher then reconnects and sends the same
outbox row again, so an outage delays alerts by the outage and the reconnect, not
by a further timeout.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from nrt.alerts.model import Alert
from nrt.mqttlink import ConnectionLost, PromptClient

DEFAULT_URL = "mqtt://localhost:1883"
JSON_TYPE = "application/json"
VOEVENT_TYPE = "application/x-voevent+xml"


class BrokerError(RuntimeError):
    """The broker cannot be used as configured; the message says what to change."""


class PublishRefused(BrokerError):
    """The broker answered a publish with a failure reason code (e.g. Not authorized)."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        self.topic = topic
        self.reason = reason
        hint = " (the broker's ACL forbids this topic for our user)" if reason.value == 135 else ""
        super().__init__(f"broker refused publish to {topic!r}: {reason}{hint}")


@dataclass(frozen=True)
class MqttConfig:
    """Where and how to publish. `url` is ``mqtt://host:port`` or ``mqtts://host:port``
    (TLS); user and password may also be given in the URL."""

    url: str = DEFAULT_URL
    prefix: str = "nrt"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = None
    keepalive: int = 30
    #: MQTT 5 message expiry of alerts (s): a subscriber away longer does not get stale alerts.
    message_expiry: int = 7 * 86400
    health_expiry: int = 86400
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise BrokerError(
                f"broker URL {self.url!r}: use mqtt://host:port or mqtts://host:port (TLS)"
            )
        if not self.prefix or any(c in self.prefix for c in "+#") or self.prefix.endswith("/"):
            raise BrokerError(f"topic prefix {self.prefix!r}: no '+', '#' or trailing '/'")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise BrokerError(f"MQTT {name} {path} does not exist; fix the path")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl") or self.ca_file is not None

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        parts = urlsplit(self.url)
        user = self.username or (unquote(parts.username) if parts.username else None)
        password = self.password or (unquote(parts.password) if parts.password else None)
        return user, password

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file or self.cert_file))
        return context

    # -- topics (DESIGN.md section 7, a contract) ----------------------------------------

    def alert_topic(self, alert: Alert) -> str:
        return f"{self.prefix}/alerts/{alert.topic_instrument}"

    def voevent_topic(self, alert: Alert) -> str:
        return f"{self.alert_topic(alert)}/voevent"

    def health_topic(self, instrument: str) -> str:
        return f"{self.prefix}/health/{instrument}"

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"


def message_properties(
    content_type: str, expiry: int | None, user: dict[str, str] | None = None
) -> Properties:
    """MQTT 5 PUBLISH properties: UTF-8 payload, content type, expiry, user properties."""
    props = Properties(PacketTypes.PUBLISH)
    props.PayloadFormatIndicator = 1
    props.ContentType = content_type
    if expiry:
        props.MessageExpiryInterval = int(expiry)
    if user:
        props.UserProperty = list(user.items())
    return props


def alert_properties(alert: Alert, content_type: str, expiry: int) -> Properties:
    """Id and record number ride along as user properties, so subscribers can
    deduplicate (and route) without parsing the payload."""
    return message_properties(
        content_type,
        expiry,
        {
            "id": alert.id,
            "record_number": str(alert.record_number),
            "alert_type": alert.alert_type,
            "alert_tense": alert.alert_tense,
        },
    )


def status_payload(state: str, **extra: Any) -> bytes:
    return json.dumps({"status": state, **extra}, sort_keys=True).encode()


class CheckedClient(PromptClient):
    """An aiomqtt client that remembers failed PUBACK reason codes (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusals: dict[int, ReasonCode] = {}
        self.pending_calls_threshold = 1000  # the publisher pipelines whole batches
        paho_publish = self._client.publish

        def publish(topic, payload=None, qos=0, retain=False, properties=None, *, info_sink=None):
            info = paho_publish(topic, payload, qos, retain, properties)
            if info_sink is not None:
                info_sink.append(info)
            return info

        self._client.publish = publish  # type: ignore[method-assign]

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code is not None and getattr(reason_code, "is_failure", False):
            self._refusals[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_checked(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
        timeout: float | None = None,
    ) -> None:
        """Publish with QoS 1 and return only when the broker accepted it.

        Raises `PublishRefused` for a PUBACK with a failure reason code, and
        `ConnectionLost` as soon as the connection drops before the PUBACK (not
        at the timeout: see the module doc); the caller sends it again on a new
        connection (a duplicate of the same message at worst, as QoS 1 allows).
        """
        lost = self._disconnected  # replaced by the next __aenter__, so keep this one
        if lost.done():
            raise _lost(lost, topic)
        infos: list[paho.MQTTMessageInfo] = []
        publish = asyncio.ensure_future(
            self.publish(
                topic,
                payload,
                qos=1,
                retain=retain,
                properties=properties,
                timeout=timeout,
                info_sink=infos,
            )
        )
        try:
            await asyncio.wait((publish, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not publish.done() and not (infos and infos[0].is_published()):
                # Lost (or we are cancelled) before the PUBACK: stop waiting for it.
                # aiomqtt's publish removes its pending call when cancelled.
                publish.cancel()
                await asyncio.wait((publish,))
                if not publish.cancelled():
                    publish.exception()  # retrieved: the loss below is what we report
        if publish.cancelled():
            raise _lost(lost, topic)
        # Done, or its PUBACK already handled by paho as the connection dropped
        # (the same read): it completes without waiting, with that PUBACK's outcome.
        await publish
        if not infos or not infos[0].is_published():
            raise _lost(lost, topic)  # not expected: aiomqtt returned without a PUBACK
        reason = self._refusals.pop(infos[0].mid, None)
        if reason is not None:
            raise PublishRefused(topic, reason)


def _lost(disconnected: asyncio.Future, topic: str) -> ConnectionLost:
    """The error for a publish to `topic` whose connection is gone, chained to its cause."""
    cause = None
    if disconnected.done() and not disconnected.cancelled():
        cause = disconnected.exception()  # also marks it retrieved: no asyncio noise
    why = f": {cause}" if cause is not None else ""
    error = ConnectionLost(
        f"connection lost before the broker acknowledged the publish to {topic!r}{why}"
    )
    error.__cause__ = cause
    return error


def make_client(
    config: MqttConfig,
    *,
    will: aiomqtt.Will | None = None,
    client_id: str | None = None,
    clean_start: bool = True,
    session_expiry: int | None = None,
) -> CheckedClient:
    """An MQTT 5 client for `config` (not yet connected: use ``async with``)."""
    user, password = config.credentials
    connect_props = None
    if session_expiry:
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = int(session_expiry)
    return CheckedClient(
        config.host,
        config.port,
        username=user,
        password=password,
        identifier=client_id or config.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        will=will,
        clean_start=clean_start,
        keepalive=config.keepalive,
        timeout=config.timeout,
        properties=connect_props,
        tls_context=config.ssl_context(),
    )


def explain(exc: BaseException, config: MqttConfig) -> tuple[str, bool]:
    """A message saying what is wrong and what to change, and whether retrying
    can help by itself (True: broker away) or a person must act (False)."""
    user = config.credentials[0]
    if isinstance(exc, PublishRefused):
        return f"{exc} at {config.url} as user {user!r}; fix the broker ACL", False
    if isinstance(exc, aiomqtt.MqttCodeError) and isinstance(exc.rc, ReasonCode):
        code = exc.rc.value
        if code in (134, 135):  # Bad user name or password / Not authorized
            return (
                f"broker {config.url} rejected the login of user {user!r}: {exc.rc}; "
                "check the MQTT username and password in the configuration",
                False,
            )
        return f"broker {config.url} refused the connection: {exc.rc}", code in (136, 137, 151)
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return (
            f"TLS to {config.url} failed: {text}; set ca_file to the CA that signed the "
            "broker's certificate (and connect by a name or address the certificate lists)",
            False,
        )
    if "SSL" in text or "WRONG_VERSION" in text:
        return f"TLS to {config.url} failed: {text}; is the listener TLS (mqtts://)?", False
    return f"broker {config.url} unreachable: {text or type(exc).__name__}", True
