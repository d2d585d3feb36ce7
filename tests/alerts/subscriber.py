"""A persistent MQTT 5 subscriber for the tests (paho in its own thread).

It keeps a session on the broker (fixed client id, clean_start False, long
session expiry) so messages published while it is away are queued for it,
reconnects by itself, and records every message with its MQTT 5 properties.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    user: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    expiry: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.user["id"], int(self.user["record_number"])


class Collector:
    def __init__(
        self,
        host: str,
        port: int,
        topics: tuple[str, ...] = ("nrt/#",),
        client_id: str = "test-collector",
        *,
        username: str | None = None,
        password: str | None = None,
        tls_context=None,
    ) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Condition()
        self.topics = topics
        self.subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(host, port, clean_start=False, properties=props)

    def start(self, timeout: float = 10.0) -> Collector:
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise TimeoutError("test subscriber never subscribed")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not flags.session_present:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        props = getattr(msg, "properties", None)
        received = Received(
            topic=msg.topic,
            payload=msg.payload,
            retain=bool(msg.retain),
            user=dict(getattr(props, "UserProperty", []) or []),
            content_type=getattr(props, "ContentType", None),
            expiry=getattr(props, "MessageExpiryInterval", None),
        )
        with self.lock:
            self.messages.append(received)
            self.lock.notify_all()

    def on(self, suffix: str) -> list[Received]:
        """Messages whose topic ends with `suffix` (e.g. "/voevent")."""
        with self.lock:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def alerts(self) -> list[Received]:
        with self.lock:
            return [
                m
                for m in self.messages
                if "/alerts/" in m.topic and not m.topic.endswith("/voevent")
            ]

    def wait_for(self, predicate, timeout: float = 20.0, settle: float = 0.3) -> None:
        """Until predicate(self) holds, then a little longer to catch late duplicates."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(self.messages)} messages after {timeout} s")
                self.lock.wait(left)
        time.sleep(settle)
