"""ASGI middleware of the GraphQL HTTP route: the body limit, metrics, and requests cut short
by the shutdown timeout."""

from __future__ import annotations

import asyncio
import enum
import time
from typing import TYPE_CHECKING, Any

from ..metrics import OPERATION_KEY, http_request_done
from .routing import ASGIApp, Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from ..server.lifespan import ServerState

SHUTTING_DOWN_BODY = b'{"errors":[{"message":"the server is shutting down; retry"}]}'
SHUTTING_DOWN_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(SHUTTING_DOWN_BODY)).encode()),
    (b"retry-after", b"1"),
    (b"connection", b"close"),
]


class BodyRefused(enum.Enum):
    """Why `read_body` returned no body."""

    TOO_LARGE = "too large"
    TOO_SLOW = "too slow"
    GONE = "the client left"


async def read_body(scope: Scope, receive: Receive, max_bytes: int, timeout: float) -> bytes | BodyRefused:
    """A request's whole body, reading at most `max_bytes` of it (a larger declared length is
    refused before reading), within `timeout` seconds."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            return BodyRefused.TOO_LARGE
    try:
        async with asyncio.timeout(timeout):
            message = await receive()
            if message["type"] == "http.disconnect":
                return BodyRefused.GONE
            body = message.get("body", b"")
            if not message.get("more_body", False):  # the usual case: one message
                return body if len(body) <= max_bytes else BodyRefused.TOO_LARGE
            chunks = [body]
            size = len(body)
            while size <= max_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return BodyRefused.GONE
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        return BodyRefused.TOO_SLOW
    return b"".join(chunks) if size <= max_bytes else BodyRefused.TOO_LARGE


async def answer_body_refusal(send: Send, refused: BodyRefused, max_bytes: int, timeout: float) -> None:
    """Answer a body that is too large (413) or too slow (408: and the connection closed, as
    the rest of the body may still be on its way); nothing to a client that left."""
    if refused is BodyRefused.TOO_LARGE:
        await send_json(send, 413, (f'{{"errors":[{{"message":"request body is larger than the server accepts '
                                    f'({max_bytes} bytes); send a smaller request"}}]}}').encode())
    elif refused is BodyRefused.TOO_SLOW:
        await send_json(send, 408, (f'{{"errors":[{{"message":"the request body was not complete within '
                                    f'{timeout:g} seconds"}}]}}').encode(), close=True)


class BodyLimit:
    """Refuse an HTTP body over `max_bytes` with 413, reading at most that much of it, and one
    not complete within `timeout` seconds with 408.

    Channels buffers a whole body in memory before handing it over; this sits in front, so
    an endless or oversized upload costs at most `max_bytes`, and a trickled one at most
    `timeout` seconds of a connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, self.max_bytes, self.timeout)
        if isinstance(body, BodyRefused):
            await answer_body_refusal(send, body, self.max_bytes, self.timeout)
            return
        await self.app(scope, replaying(body, receive), send)


class HTTPMetrics:
    """ASGI middleware for the GraphQL HTTP route: status, operation and latency per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before answering, uvicorn answers 500

        async def send_with_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            http_request_done(status, scope.get(OPERATION_KEY, "none"), time.perf_counter() - started)


class AnswerCutRequests:
    """ASGI middleware for HTTP: a request still running when --shutdown-timeout runs out
    is cancelled by uvicorn, which would answer 500 and log an ERROR with a traceback.
    Answer 503 instead (the client may retry elsewhere), or end a response already begun.
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except asyncio.CancelledError:
            if not self.state.stopping:
                raise
            await answer_cut_request(send, started)


async def answer_cut_request(send: Send, started: bool) -> None:
    """What a request cut at shutdown gets: 503 if no response has begun, else the end of it."""
    try:
        if not started:
            await send({"type": "http.response.start", "status": 503, "headers": SHUTTING_DOWN_HEADERS})
            await send({"type": "http.response.body", "body": SHUTTING_DOWN_BODY})
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except Exception:  # the client is gone as well: nothing to tell it
        pass


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for an application that reads a body already read: that body, then whatever
    the client sends next (its disconnect)."""
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
