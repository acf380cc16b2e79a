"""uvicorn's HTTP protocols, with a bound on request heads and on connections (a fix).

uvicorn closes a kept-alive connection that stays idle after a response, but a connection
that never completes a request head is kept forever, and httptools keeps whatever a head
grows to. uvicorn has no hook for either, so these subclasses of its protocols watch the
connection themselves, using its attributes (`cycle`, `connections`, `app`,
`ws_protocol_class`), its upgrade method and httptools' parser callbacks:

- A request head must be complete within `guard.limits.header_timeout` seconds of the
  connection, or of the first byte of the next request on a kept-alive connection:
  otherwise `guard.timed_out()`, a 408 and the connection closed. A head over
  MAX_REQUEST_HEAD bytes: 431 and closed.
- Past `guard.limits.max_connections` open connections, a new one is still answered: its
  ASGI app becomes `guard.over_capacity_app(app)` (a 503), and a WebSocket handshake gets
  AtCapacityWebSocketProtocol (completed, then closed with 1013). Connections past the cap
  use the descriptors up to `descriptor_ceiling` while they send their head; when those run
  out, the one that waited longest for its head is answered 503 and closed to make room.

The policy (what to log, count and answer) is the guard's: gqlchannels.server.connection_guard.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from websockets.http11 import Request
from websockets.server import ServerProtocol

from . import Kind, override

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn; h11 is always there
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

GATE = override(
    "uvicorn-connection-guard", Kind.FIX, {"uvicorn": ">=0.54,<0.56"},
    stock="uvicorn's own HTTP protocol, with --max-connections as its limit_concurrency (no header timeout)",
)

MAX_REQUEST_HEAD = 64 * 1024  # bytes of request line and headers; h11's limit is set to the same
TRY_AGAIN_LATER = 1013  # WebSocket close code
CLOSE_TIMEOUT = 10.0  # seconds a refused WebSocket client has to answer our close frame

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Limits(Protocol):
    header_timeout: float
    max_connections: int | None
    descriptor_ceiling: int | None


class Guard(Protocol):
    """What the protocols ask of the server's policy."""

    limits: Limits
    retry_after: int  # seconds, in the 503 written past uvicorn's request cycle

    def opened(self, connections: set[Any]) -> None: ...  # uvicorn's open connections, this one included
    def closed(self, connections: set[Any]) -> None: ...
    def refused(self, answer: str) -> None: ...  # "503", "1013" or "none"
    def timed_out(self) -> None: ...
    def over_capacity_app(self, app: ASGIApp) -> ASGIApp: ...


def error_response(status: bytes, message: str, extra_headers: bytes = b"") -> bytes:
    """A whole response, written past uvicorn's request cycle to a connection about to close."""
    body = json.dumps({"errors": [{"message": message}]}).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra_headers + b"connection: close\r\n\r\n" + body)


class AtCapacityWebSocketProtocol(asyncio.Protocol):
    """For a WebSocket handshake over the connection cap: completes it, then closes with 1013
    (try again later), which clients read as "reconnect later", where a refused handshake (an
    HTTP status) reads as a server that does not serve WebSockets there. Built on websockets'
    sans-I/O protocol alone, so it works whichever WebSocket protocol uvicorn runs."""

    def __init__(self, *, guard: Guard, server_state: Any, **_: Any) -> None:
        self.guard = guard
        self.server_state = server_state
        self.conn = ServerProtocol()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if isinstance(event, Request):
                response = self.conn.accept(event)
                self.conn.send_response(response)
                if response.status_code == 101:
                    self.conn.send_close(TRY_AGAIN_LATER, "the server is at its connection limit; try again later")
                    self.guard.refused("1013")
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.close)
        if self.conn.close_rcvd is not None or self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def shutdown(self) -> None:  # uvicorn calls it on its graceful shutdown
        if self.transport is not None:
            self.transport.close()


# This worker's connections over the cap that have not sent their request head yet, oldest
# first: the first to be answered and closed when descriptors run short.
_awaiting_refusal: dict[_Guarded, None] = {}


class _Guarded:
    """What both HTTP protocols add to uvicorn's. Their own attributes are used by name
    (transport, connections, cycle, app, ws_protocol_class), which both classes share; each
    subclass says when it waits for a request head."""

    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any
    app: Any
    ws_protocol_class: Any

    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.header_timer: asyncio.TimerHandle | None = None
        self.upgraded = False

    def _waiting_for_request_head(self) -> bool:
        """Whether the client owes the head of a request: before its first byte (while no
        request is being answered) or part-way through it."""
        raise NotImplementedError

    def _request_head_too_large(self) -> bool:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        limits, open_now = self.guard.limits, len(self.connections)
        self.guard.opened(self.connections)
        if limits.descriptor_ceiling is not None and open_now > limits.descriptor_ceiling:
            if not _awaiting_refusal:
                self.guard.refused("none")
                self.transport.close()
                return
            next(iter(_awaiting_refusal))._make_room()
        if limits.max_connections is not None and open_now > limits.max_connections:
            # Decided now, answered once the request head says what it is.
            self.app = self.guard.over_capacity_app(self.app)
            self.ws_protocol_class = functools.partial(AtCapacityWebSocketProtocol, guard=self.guard)
            _awaiting_refusal[self] = None
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)  # type: ignore[misc]
        self.guard.closed(self.connections)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.upgraded or self.transport.is_closing() or not self._waiting_for_request_head():
            self._head_done()
        elif self._request_head_too_large():
            self._head_done()
            self.transport.write(error_response(b"431 Request Header Fields Too Large", (
                f"the request line and headers are larger than the server accepts ({MAX_REQUEST_HEAD} bytes)")))
            self.transport.close()
        elif self.header_timer is None:
            # uvicorn's keep-alive timer stops at any byte, so bytes that never complete a
            # request head would otherwise keep the connection forever.
            self._arm_header_timer()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self.upgraded = True  # the WebSocket protocol takes the connection over
        self._head_done()
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]

    def _arm_header_timer(self) -> None:
        self.header_timer = asyncio.get_running_loop().call_later(self.guard.limits.header_timeout,
                                                                  self._header_timeout)

    def _head_done(self) -> None:
        """A request head is complete, or none will come: no deadline, no place in the queue."""
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        _awaiting_refusal.pop(self, None)

    def _make_room(self) -> None:
        self._head_done()
        self.guard.refused("503")
        retry_after = b"retry-after: " + str(self.guard.retry_after).encode() + b"\r\n"
        self.transport.write(error_response(b"503 Service Unavailable", (
            f"the server is at its connection limit; retry in {self.guard.retry_after} seconds"), retry_after))
        self.transport.close()

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.upgraded:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's head is late while the one before it is still answered:
            # closing now would cut that answer off. Its deadline starts again.
            self._arm_header_timer()
            return
        self._head_done()
        self.guard.timed_out()
        self.transport.write(error_response(b"408 Request Timeout", (
            f"the request headers were not complete within {self.guard.limits.header_timeout:g} seconds")))
        self.transport.close()


class GuardedH11Protocol(_Guarded, H11Protocol):
    def _waiting_for_request_head(self) -> bool:
        # h11 leaves IDLE only once a whole request head is parsed.
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _request_head_too_large(self) -> bool:
        return False  # h11 refuses one over h11_max_incomplete_event_size itself (400)


if HttpToolsProtocol is not None:
    class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.in_head = False  # between a request's first byte and the end of its head
            self.in_body = False  # after its head, until the end of its body
            self.head_bytes = 0

        def _waiting_for_request_head(self) -> bool:
            return self.in_head or (not self.in_body and (self.cycle is None or self.cycle.response_complete))

        def _request_head_too_large(self) -> bool:
            return self.head_bytes > MAX_REQUEST_HEAD

        # httptools' parser callbacks

        def on_message_begin(self) -> None:
            self.in_head, self.in_body, self.head_bytes = True, False, 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self.head_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self.head_bytes += len(name) + len(value) + 4  # with ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self.in_head, self.in_body = False, True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self.in_body = False
            super().on_message_complete()


def guarded_protocol(guard: Guard, *, h11_only: bool = False) -> Callable[..., asyncio.Protocol]:
    """uvicorn's `http=`: httptools when it is installed (uvicorn's own choice too), else h11.
    A partial, not a closure: uvicorn pickles its config for each worker process."""
    cls = GuardedHttpToolsProtocol if HttpToolsProtocol is not None and not h11_only else GuardedH11Protocol
    return functools.partial(cls, guard=guard)
