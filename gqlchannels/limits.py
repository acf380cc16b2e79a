"""Limits on what one client may ask of the server, and the HTTP body limit.

The GraphQL limits (tokens, depth, aliases) are enforced by gqlchannels.extension. Every
limit is a number a client can hit by accident or on purpose; hitting it is a clear 4xx (or
a close code), never memory growth and never a 500.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .routing import ASGIApp, Receive, Scope, Send, send_json


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_size: int = 1024 * 1024  # bytes of one HTTP request body
    max_depth: int = 20  # GraphiQL's full introspection query passes both (tests/test_limits.py)
    max_tokens: int = 5000
    max_aliases: int = 50
    max_subscriptions: int = 100  # operations in flight on one WebSocket
    connection_init_timeout: float = 10.0  # seconds a WebSocket may wait before connection_init


class BodyLimit:
    """Refuse an HTTP body over `max_bytes` with 413, reading at most that much of it.

    Channels buffers a whole body in memory before handing it over; this sits in front, so
    an endless or oversized upload costs at most `max_bytes`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self.refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def refuse(self, send: Send) -> None:
        await send_json(send, 413, (
            f'{{"errors":[{{"message":"request body is larger than the server accepts '
            f'({self.max_bytes} bytes); send a smaller request"}}]}}'
        ).encode())
