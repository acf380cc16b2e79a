"""A TCP proxy in front of the shared RabbitMQ, for making broker faults without touching it.

Runs its own event loop in a thread, so sync tests, async tests and server subprocesses can
all go through it. `cut()` drops every open connection, `refuse()` turns new ones away,
`pause()` stops forwarding bytes (a hung broker), `restore()` undoes all of it. With
`tls=` it also terminates TLS, to stand in for a broker that speaks amqps://.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine
from typing import Any


class TCPProxy:
    def __init__(self, upstream_port: int = 5672, upstream_host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tls = tls
        self.port = 0
        self.connections_made = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._refusing = False
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def start(self) -> TCPProxy:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, scheme: str = "amqp", query: str = "") -> str:
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://guest:guest@{host}:{self.port}/" + (f"?{query}" if query else "")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.connections_made += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                                 return_exceptions=True)
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.close()

    def cut(self) -> None:
        """Drop every connection now (the broker 'restarts')."""
        async def cut() -> None:
            for pair in list(self._pairs):
                for writer in pair:
                    writer.transport.abort()
        self._call(cut())

    def refuse(self) -> None:
        """Turn new connections away until restore()."""
        self._refusing = True

    def pause(self) -> None:
        """Hold every byte in both directions until restore() (a hung broker or network)."""
        self._loop.call_soon_threadsafe(self._flowing.clear)  # type: ignore[union-attr]

    def restore(self) -> None:
        self._refusing = False
        self._loop.call_soon_threadsafe(self._flowing.set)  # type: ignore[union-attr]

    def stop(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for pair in list(self._pairs):
                for writer in pair:
                    writer.transport.abort()
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> TCPProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
