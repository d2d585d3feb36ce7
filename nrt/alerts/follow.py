"""The subscriber side: follow the alert stream, dropping duplicates.

QoS 1 means at-least-once: after a publisher restart or a lost PUBACK the same
revision can arrive twice. (`id`, `record_number`) identifies a revision, so
`Deduper` keeps the keys it has seen and `follow` yields each revision once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator

import aiomqtt

from nrt.alerts.model import Alert, AlertFormatError
from nrt.alerts.mqtt import BrokerError, MqttConfig, explain, make_client

log = logging.getLogger("nrt.alerts")


class Deduper:
    """Remembers the last `capacity` (id, record_number) keys."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()

    def first_time(self, key: tuple[str, int]) -> bool:
        """True the first time `key` is offered, False for a duplicate."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


def parse_message(payload: bytes, topic: str) -> tuple[Alert, dict]:
    """The alert in a JSON message, with a clear error naming the topic if it is not one."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a huge int, deep nesting
        raise AlertFormatError(f"message on {topic} is not JSON: {exc}") from exc
    return Alert.from_json(document, source=f"message on {topic}"), document


async def follow(
    config: MqttConfig,
    *,
    instrument: str = "+",
    session: str | None = None,
    retry_max: float = 10.0,
) -> AsyncIterator[tuple[Alert, dict]]:
    """Yield each alert revision once, as it arrives, reconnecting when the broker
    goes away. With `session` (a client id) the broker keeps our subscription and
    queues alerts while we are away. Raises `BrokerError` when a person must act
    (wrong credentials, TLS trust)."""
    topic = f"{config.prefix}/alerts/{instrument}"
    dedupe = Deduper()
    delay = 0.2
    while True:
        try:
            client = make_client(
                config,
                client_id=session,
                clean_start=session is None,
                session_expiry=7 * 86400 if session else None,
            )
            async with client:
                granted = await client.subscribe(topic, qos=1)
                refused = [rc for rc in granted if getattr(rc, "is_failure", False)]
                if refused:  # e.g. an ACL: without this we would wait for nothing, forever
                    raise BrokerError(
                        f"broker {config.url} refused the subscription to {topic!r} for user "
                        f"{config.credentials[0]!r}: {refused[0]}; ask for read access"
                    )
                delay = 0.2
                async for message in client.messages:
                    try:
                        alert, document = parse_message(bytes(message.payload), str(message.topic))
                    except AlertFormatError as exc:
                        log.warning("%s (skipped)", exc)
                        continue
                    if dedupe.first_time(alert.key):
                        yield alert, document
        except aiomqtt.MqttError as exc:
            message, transient = explain(exc, config)
            if not transient:
                raise BrokerError(message) from None
            log.warning("%s; reconnecting in %.1f s", message, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, retry_max)
