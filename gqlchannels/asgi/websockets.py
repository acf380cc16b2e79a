"""Open WebSocket connections of this worker: counted for metrics, closed on shutdown.

The tracker wraps the WebSocket route, so it can send a close frame to any connection (1001,
going away, when the server stops: gqlchannels.server.shutdown) and then swallow what the
consumer still sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .routing import ASGIApp, Receive, Scope, Send

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
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when --shutdown-timeout is over. A connection we
            # closed for the shutdown has had its answer: end quietly, no traceback.
            if not connection.closed:
                raise
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
