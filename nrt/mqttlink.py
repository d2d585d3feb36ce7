"""An aiomqtt client that fails a connect attempt as soon as the broker's side closes it.

aiomqtt 2.x (2.5.1, the last 2.x) ignores a connection closed before the CONNACK
(a broker going down, a proxy or load balancer that accepts and then drops it)
and ``__aenter__`` waits out its whole timeout (10 s) before the caller may try
again. With no public hook for it, `PromptClient` watches paho's disconnect
callback while connecting and fails aiomqtt's private ``_connected`` future at
once with `ConnectionLost`: the alert publisher and the telemetry source then
reconnect after their own backoff, so a broker that comes back within seconds is
used within seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt


class ConnectionLost(aiomqtt.MqttError):
    """The connection dropped before the broker answered (CONNACK or PUBACK): retry."""


class PromptClient(aiomqtt.Client):
    """``aiomqtt.Client`` whose connect attempt fails when the connection closes first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: True while __aenter__ waits for the CONNACK (see _on_disconnect).
        self._connecting = False

    async def __aenter__(self) -> PromptClient:
        self._connecting = True
        try:
            return await super().__aenter__()
        finally:
            self._connecting = False

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if self._connecting and not self._connected.done():
            try:
                on_loop = asyncio.get_running_loop() is self._loop
            except RuntimeError:  # paho may write (and fail) from connect()'s thread
                on_loop = False
            if on_loop:
                self._connect_failed(reason_code)
            else:
                self._loop.call_soon_threadsafe(self._connect_failed, reason_code)
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _connect_failed(self, reason_code: Any) -> None:
        if self._connecting and not self._connected.done():
            self._connected.set_exception(
                ConnectionLost(
                    f"connection to {self._hostname}:{self._port} closed before the "
                    f"broker answered CONNECT ({reason_code})"
                )
            )
