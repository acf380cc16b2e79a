"""Open WebSocket connections of this worker: counted for metrics, closed on shutdown.

uvicorn, on SIGTERM, closes WebSockets with 1012 only after it stopped listening; we want
every client told "going away" (1001) first, so it reconnects to another replica while this
one finishes its in-flight HTTP requests. The tracker wraps the WebSocket route, so it can
send that close frame for any connection and then swallow what the consumer still sends.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from .routing import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("gqlchannels")

GOING_AWAY = 1001
CLOSE_ALL_TIMEOUT = 2.0  # seconds to put close frames on every socket before going on


class _Connection:
    __slots__ = ("_send", "accepted", "closed")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.accepted = False
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return  # we already closed it for shutdown; the consumer does not know yet
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.close":
            self.closed = True
        await self._send(message)

    async def close(self, code: int, reason: str) -> None:
        if self.closed or not self.accepted:
            return
        self.closed = True
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:  # the client went at the same moment: nothing to tell it
            pass


class WebSocketTracker:
    """ASGI middleware for the WebSocket route; knows every open connection."""

    def __init__(self, app: ASGIApp, on_change: Callable[[int], None] = lambda delta: None) -> None:
        self.app = app
        # A Channels consumer's as_asgi() app is made here, as it would make it, so its
        # wrapper's coroutine frame does not stay for each connection's life (about 500 bytes).
        self.consumer_class: Any = getattr(app, "consumer_class", None)
        self.consumer_initkwargs: dict[str, Any] = getattr(app, "consumer_initkwargs", {})
        self.open: set[_Connection] = set()
        self.on_change = on_change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        connection = _Connection(send)
        self.open.add(connection)
        self.on_change(1)
        try:
            if self.consumer_class is not None:
                await self.consumer_class(**self.consumer_initkwargs)(scope, receive, connection.send)
            else:
                await self.app(scope, receive, connection.send)
        finally:
            self.open.discard(connection)
            self.on_change(-1)

    async def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> int:
        connections = [c for c in self.open if c.accepted and not c.closed]
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.close(code, reason)) for c in connections], timeout=CLOSE_ALL_TIMEOUT
            )
        return len(connections)


def close_websockets_before_exit(tracker: WebSocketTracker, on_signal: Callable[[], None]) -> None:
    """Put ourselves in front of uvicorn's SIGTERM/SIGINT handler in this worker.

    On the signal: mark the server as stopping (/readyz turns 503), close every WebSocket with
    1001, then hand the signal to uvicorn, which stops accepting, lets in-flight HTTP requests
    finish within --shutdown-timeout and runs the lifespan shutdown. Does nothing when no
    uvicorn server owns the signals (the app mounted elsewhere, a non-main thread).
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous = signal.getsignal(signum)
        except ValueError:
            return
        if not callable(previous) or getattr(previous, "__name__", "") != "handle_exit":
            continue

        def handler(sig: int, frame: Any, previous: Any = previous) -> None:
            on_signal()

            async def close_then_exit() -> None:
                try:
                    closed = await tracker.close_all()
                    if closed:
                        logger.info("closed %d WebSocket connection(s) with %d (going away)", closed, GOING_AWAY)
                finally:
                    previous(sig, frame)

            loop.call_soon_threadsafe(lambda: loop.create_task(close_then_exit()))

        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread
            return
