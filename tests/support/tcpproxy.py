"""A TCP proxy the test controls, to cut the network between a client and a service.

It runs an asyncio loop in a background thread. ``cut("reset")`` closes every
connection and refuses new ones (a broker host gone, a firewall sending RST);
``cut("blackhole")`` keeps the connections open but silently drops every byte
in both directions and leaves new connections hanging (a cable pulled, a NAT
that forgot the flow): only the client's keepalive can notice that one.
``restore()`` lets traffic through again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.support.services import free_port


class TcpProxy:
    """127.0.0.1:<port> forwarded to ``target_host:target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "open"  # open, reset, blackhole
        self.connections = 0
        #: connections accepted and closed at once while cut with ``reset``
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            self.refused += 1
            writer.close()
            return
        self._writers.add(writer)
        try:
            while self.mode == "blackhole":  # a new connection that never gets through
                await asyncio.sleep(0.1)
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self.connections += 1
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            for w in (writer, locals().get("up_writer")):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue  # swallowed: neither end hears anything
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def cut(self, how: str = "reset") -> None:
        """Cut the network: ``reset`` (connections closed) or ``blackhole`` (bytes dropped)."""
        if how not in ("reset", "blackhole"):
            raise ValueError(f"cut how={how!r}: use 'reset' or 'blackhole'")
        self.mode = how
        if how == "reset":
            self._call(self._close_all())

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    def restore(self) -> None:
        """Let traffic through again (connections dropped by a blackhole stay useless)."""
        if self.mode == "blackhole":
            self._call(self._close_all())  # as a NAT would: the old flow is gone for good
        self.mode = "open"

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        with contextlib.suppress(RuntimeError):
            self._loop.close()
