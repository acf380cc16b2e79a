"""The WebSocket side of uvicorn for a server that holds thousands of idle connections.

uvicorn's own protocol (websockets-sansio) keeps, per connection, an asyncio.Queue (four
deques, about 3 KB), an asyncio.Event for write flow control (a deque), an instance dict
of some forty attributes, the handshake's request and response objects, and it awaits the
Event on every message sent. With GraphQL subscriptions a connection is mostly idle, so
that state is most of what a connection costs. This protocol does the same job, through
the same `websockets` state machine (handshake, framing, close handshake, permessage-
deflate, size limits), with slots, a list as the inbox, a future only while writing is
paused, and one keepalive timer shared by all connections (keepalive.py). Behaviour seen
by clients and by the ASGI application is uvicorn's: the same handshake responses and log
lines, close codes, keepalive pings, read pausing while the application is behind, the
websocket.http.response extension, and 1012 on shutdown. A text message, when no extension
(permessage-deflate) is negotiated, is written as the frame websockets would serialize,
without its Frame object and send queue (`text_frame`). It copies uvicorn's protocol's
behaviour (and its `uvicorn.protocols.utils` helpers, its ServerState), hence the gate: with
another uvicorn, or --no-fast-paths, uvicorn's own websockets-sansio protocol serves.

`protocol()` is what gqlchannels.server.run passes to uvicorn as `ws=`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import struct
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from . import Kind, override
from .keepalive import KeepaliveClock, clock_for, resolution_for

GATE = override(
    "uvicorn-websocket-protocol", Kind.FAST_PATH, {"uvicorn": ">=0.54,<0.56", "websockets": ">=17,<18"},
    stock="uvicorn's websockets-sansio protocol (about 12 KB more per idle WebSocket)",
)

Message = dict[str, Any]

# Header fields that every client of one deployment sends alike, and that carry no secret:
# each distinct (name, value) is kept once and shared by the scopes of all connections.
SHARED_HEADER_NAMES = frozenset({
    "host", "upgrade", "connection", "origin", "user-agent", "sec-websocket-version", "sec-websocket-protocol",
    "sec-websocket-extensions", "accept-encoding", "accept-language", "cache-control", "pragma",
})
MAX_SHARED_HEADERS = 1024  # distinct pairs kept; past that, each connection has its own copy
_shared_headers: dict[tuple[str, str], tuple[bytes, bytes]] = {}

CLOSE_TIMEOUT = 10.0  # seconds to wait for the client's reply to our close frame
SHUTDOWN_CODE = 1012  # "service restart", as uvicorn


def _scope_header(name: str, value: str) -> tuple[bytes, bytes]:
    pair = _shared_headers.get((name, value))
    if pair is None:
        pair = (name.encode("ascii"), value.encode("latin-1"))
        if len(_shared_headers) < MAX_SHARED_HEADERS and name.lower() in SHARED_HEADER_NAMES:
            _shared_headers[(name, value)] = pair
    return pair


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class _Inbox:
    """What the client sent, waiting for the application's `receive`: a list, and the
    readers waiting on it (usually one, none while the application is busy)."""

    __slots__ = ("items", "waiters")

    def __init__(self) -> None:
        self.items: list[Message] = []
        self.waiters: list[asyncio.Future[None]] | None = None

    def put(self, message: Message) -> None:
        self.items.append(message)
        if self.waiters:
            for waiter in self.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.waiters = None

    async def get(self) -> Message:
        while not self.items:
            waiter = asyncio.get_running_loop().create_future()
            if self.waiters is None:
                self.waiters = []
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                if self.waiters is not None and waiter in self.waiters:
                    self.waiters.remove(waiter)
        return self.items.pop(0)


class LeanWebSocketProtocol(asyncio.Protocol):
    __slots__ = (
        "config", "app", "app_state", "server_state", "logger", "transport", "client", "server",
        "scheme", "conn", "scope", "response", "inbox", "handshake_complete", "close_sent",
        "disconnected", "read_paused", "write_resumed", "initial_response", "close_timer",
        "keepalive", "keepalive_tick", "ping_payload", "fragments", "fragments_are_text",
    )

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.app_state = app_state
        self.server_state = server_state
        self.logger = logging.getLogger("uvicorn.error")
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "ws"
        extensions = []
        if config.ws_per_message_deflate:
            extensions = [ServerPerMessageDeflateFactory(server_max_window_bits=12, client_max_window_bits=12,
                                                         compress_settings={"memLevel": 5})]
        self.conn = ServerProtocol(extensions=extensions, max_size=config.ws_max_size, logger=self.logger)
        self.scope: dict[str, Any] = {}
        self.response: Response | None = None  # between the handshake request and the app's answer
        self.inbox = _Inbox()
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.read_paused = False
        self.write_resumed: asyncio.Future[None] | None = None  # only while the transport's buffer is full
        self.initial_response: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.keepalive: KeepaliveClock | None = None  # with a ws_ping_interval, once accepted
        self.keepalive_tick: int | None = None  # when the next ping, or the pong's deadline, is due
        self.ping_payload: bytes | None = None  # set while a pong is awaited
        self.fragments: list[bytes] | None = None  # a message arriving in several frames
        self.fragments_are_text = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is one, without subclassing it
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.transport = transport
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "wss" if is_ssl(transport) else "ws"

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_keepalive()
        self.inbox.put({"type": "websocket.disconnect", "code": 1005 if self.handshake_complete else 1006})
        self.server_state.connections.discard(self)  # type: ignore[arg-type]
        self.handshake_complete = True
        self.disconnected = True
        self._wake_writer()  # asyncio never resumes writing on a transport lost while paused
        self._cancel_close_timer()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass

    def pause_writing(self) -> None:
        if self.write_resumed is None:
            self.write_resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        # Messages that arrived before a protocol error are still the client's: deliver them.
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._handle_frame(event)
            elif isinstance(event, Request):
                self._handle_request(event)
        if conn.parser_exc is not None:
            self._fail_on_parser_error()
        elif conn.handshake_exc is not None and not self.transport.is_closing():
            # Not a handshake websockets could read: it has written the 400 response.
            self.handshake_complete = self.close_sent = True
            self._write(conn.data_to_send())
            self.transport.close()

    # uvicorn's server calls this on its graceful shutdown.

    def shutdown(self) -> None:
        self._stop_keepalive()
        if self.close_sent:
            self._cancel_close_timer()
            self.transport.close()
            return
        if self.handshake_complete:
            self.inbox.put({"type": "websocket.disconnect", "code": SHUTDOWN_CODE})
            self.conn.send_close(SHUTDOWN_CODE)
            self._write(self.conn.data_to_send())
        else:
            self._send_500_response()
        self.transport.close()

    # The handshake

    def _handle_request(self, request: Request) -> None:
        self.response = self.conn.accept(request)
        if self.response.status_code != 101:  # not a valid WebSocket handshake: websockets says why
            self._refuse(self.response)
            return
        headers = [_scope_header(name, value) for name, value in request.headers.raw_items()]
        subprotocols: list[str] = []
        for header in request.headers.get_all("Sec-WebSocket-Protocol"):
            subprotocols.extend(token.strip() for token in header.split(","))
        raw_path, _, query_string = request.path.partition("?")
        root_path = self.config.root_path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        # websockets' parser keeps the request for the connection's life; the scope has it all.
        request.headers.clear()
        self.inbox.put({"type": "websocket.connect"})
        task = asyncio.get_running_loop().create_task(self._run_asgi())
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    async def _run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self._send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None:
            self.transport.close()

    def _send_500_response(self) -> None:
        if self.initial_response or self.handshake_complete:
            return
        self.conn.send_response(self.conn.reject(500, "Internal Server Error"))
        self._write(self.conn.data_to_send())

    # Frames from the client

    def _handle_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(frame.data, opcode is Opcode.TEXT)
            else:
                self.fragments = [bytes(frame.data)]
                self.fragments_are_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            if self.fragments is None:
                return  # websockets refuses a continuation without a start; nothing to add to
            self.fragments.append(bytes(frame.data))
            if frame.fin:
                data, self.fragments = b"".join(self.fragments), None
                self._deliver(data, self.fragments_are_text)
        elif opcode is Opcode.PING:
            self._write(self.conn.data_to_send())  # websockets has queued the pong
        elif opcode is Opcode.PONG:
            self._handle_pong(frame)
        elif opcode is Opcode.CLOSE:
            self._handle_close()

    def _deliver(self, data: bytes | bytearray | memoryview, text: bool) -> None:
        if self.close_sent:
            return  # the application is past websocket.close; keep reading until the close reply
        if text:
            try:
                message: Message = {"type": "websocket.receive", "text": str(data, "utf-8")}
            except UnicodeDecodeError:
                self.conn.fail(1007, "invalid UTF-8")
                self._fail_on_parser_error()
                return
        else:
            message = {"type": "websocket.receive", "bytes": bytes(data)}
        self.inbox.put(message)
        # Read no more from a client that is ahead of the application; receive() resumes.
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _handle_close(self) -> None:
        if self.close_sent:  # the client's reply to our close frame: the closing handshake is done
            if self._cancel_close_timer():
                self.transport.close()
            return
        if not self.transport.is_closing():
            close = self.conn.close_rcvd
            assert close is not None
            self.inbox.put({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
            self._write(self.conn.data_to_send())  # websockets has queued the close reply
            self.transport.close()

    def _fail_on_parser_error(self) -> None:
        close = self.conn.close_sent
        code, reason = (close.code, close.reason) if close is not None else (1006, "")
        self.inbox.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._hang_up()

    # Keepalive: a ping every ws_ping_interval; no pong within ws_ping_timeout closes with 1011.

    def _start_keepalive(self) -> None:
        interval = self.config.ws_ping_interval
        if interval:
            if self.keepalive is None:
                self.keepalive = clock_for(resolution_for(interval, self.config.ws_ping_timeout))
            self.keepalive_tick = self.keepalive.schedule(self, interval)

    def _stop_keepalive(self) -> None:
        if self.keepalive is not None and self.keepalive_tick is not None:
            self.keepalive.cancel(self, self.keepalive_tick)
        self.keepalive_tick = None
        self.ping_payload = None

    def keepalive_due(self, tick: int) -> None:
        if tick != self.keepalive_tick:
            return  # cancelled after its bucket was taken
        self.keepalive_tick = None
        if self.ping_payload is None:
            self._send_ping()
        else:
            self._keepalive_timeout()

    def _send_ping(self) -> None:
        if self.close_sent or self.transport.is_closing():
            return
        self.ping_payload = os.urandom(4)  # tells the answer to this ping from stale or unsolicited pongs
        self.conn.send_ping(self.ping_payload)
        self._write(self.conn.data_to_send())
        if self.config.ws_ping_timeout is not None:
            assert self.keepalive is not None
            self.keepalive_tick = self.keepalive.schedule(self, self.config.ws_ping_timeout)
        else:
            self.ping_payload = None  # no deadline for the pong: the next ping is due instead
            self._start_keepalive()

    def _handle_pong(self, frame: Frame) -> None:
        if self.ping_payload is None or bytes(frame.data) != self.ping_payload:
            return
        self._stop_keepalive()  # the pong's deadline
        self._start_keepalive()

    def _keepalive_timeout(self) -> None:
        self.ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(1011, "keepalive ping timeout")
        self._hang_up()

    # ASGI

    async def receive(self) -> Message:
        inbox = self.inbox
        message = await inbox.get()
        if self.read_paused and not inbox.items:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        if self.write_resumed is not None:
            await asyncio.shield(self.write_resumed)
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if self.handshake_complete and not self.close_sent and self.initial_response is None:
            try:
                if kind == "websocket.send":
                    data = message.get("bytes")
                    if data is not None:
                        self.conn.send_binary(data)
                    else:
                        text = message.get("text")
                        if text is not None:
                            conn = self.conn
                            if not conn.extensions and conn.state is OPEN and not conn.debug \
                                    and not conn.expect_continuation_frame and not conn.writes:
                                # What send_text and Frame.serialize write for an unmasked text
                                # frame that no extension changes, without the Frame object.
                                self.transport.write(text_frame(text.encode()))
                                return
                            conn.send_text(text.encode())
                    self._write(self.conn.data_to_send())
                elif kind == "websocket.close":
                    self._close(message.get("code", 1000), message.get("reason") or "")
                else:
                    raise RuntimeError(
                        f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")
            except InvalidState:
                raise ClientDisconnected() from None
        elif not self.handshake_complete and self.initial_response is None:
            self._answer_handshake(message)
        elif self.initial_response is not None:
            self._send_http_response_body(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")

    def _answer_handshake(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.logger.info('%s - "WebSocket %s" [accepted]', get_client_addr(self.scope),
                             get_path_with_query_string(self.scope))
            headers = [(name.decode("latin-1").lower(), value.decode("latin-1"))
                       for name, value in (self.server_state.default_headers + list(message.get("headers", [])))]
            if message.get("subprotocol"):
                headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
            response = self.response
            assert response is not None
            self.response = None
            del response.headers["Date"]
            response.headers.update(headers)
            if not self.transport.is_closing():
                self.handshake_complete = True
                self.conn.send_response(response)
                self._write(self.conn.data_to_send())
                self._start_keepalive()
        elif kind == "websocket.close":
            self.inbox.put({"type": "websocket.disconnect", "code": 1006})
            self.logger.info('%s - "WebSocket %s" 403', get_client_addr(self.scope),
                             get_path_with_query_string(self.scope))
            self._refuse(self.conn.reject(HTTPStatus.FORBIDDEN, ""))
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError("Invalid HTTP status code '%d' in response." % status)
            self.logger.info('%s - "WebSocket %s" %d', get_client_addr(self.scope),
                             get_path_with_query_string(self.scope), status)
            headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in message.get("headers", [])]
            self.initial_response = (status, headers, b"")
        else:
            raise RuntimeError("Expected ASGI message 'websocket.accept', 'websocket.close' "
                               f"or 'websocket.http.response.start' but got '{kind}'.")

    def _send_http_response_body(self, message: Message) -> None:
        assert self.initial_response is not None
        if message["type"] != "websocket.http.response.body":
            raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{message['type']}'.")
        status, headers, body = self.initial_response
        body += message["body"]
        self.initial_response = (status, headers, body)
        if message.get("more_body", False):
            return
        response_headers = Headers(headers)
        response_headers.setdefault("Date", email.utils.formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self.inbox.put({"type": "websocket.disconnect", "code": 1006})
        self._refuse(Response(status, _reason_phrase(status), response_headers, body))

    def _refuse(self, response: Response) -> None:
        self.response = None
        self.conn.send_response(response)
        self.close_sent = True
        self.handshake_complete = True
        self._write(self.conn.data_to_send())
        self.transport.close()

    def _close(self, code: int, reason: str) -> None:
        if self.transport.is_closing():
            return
        self.inbox.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self._write(self.conn.data_to_send())
        self.close_sent = True
        if self.read_paused:  # the client's close reply must be read
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.close)

    # Helpers

    def _hang_up(self) -> None:
        """Send the close frame websockets queued for a failed connection, and go."""
        self._write(self.conn.data_to_send())
        self.close_sent = True
        self.disconnected = True  # for the application: what it sends now raises ClientDisconnected
        self.transport.close()

    def _cancel_close_timer(self) -> bool:
        """Whether a close frame of ours was waiting for the client's reply."""
        timer, self.close_timer = self.close_timer, None
        if timer is None:
            return False
        timer.cancel()
        return True

    def _write(self, output: list[bytes]) -> None:
        if output:
            self.transport.write(output[0] if len(output) == 1 else b"".join(output))

    def _wake_writer(self) -> None:
        waiter, self.write_resumed = self.write_resumed, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


_TEXT_HEAD = 0b10000000 | Opcode.TEXT  # FIN, no RSV bits (no extension), the text opcode


def text_frame(data: bytes) -> bytes:
    """A complete, unmasked text frame of `data`, as websockets' Frame.serialize writes it on
    the server's side when no extension is negotiated."""
    length = len(data)
    if length < 126:
        return struct.pack("!BB", _TEXT_HEAD, length) + data
    if length < 65536:
        return struct.pack("!BBH", _TEXT_HEAD, 126, length) + data
    return struct.pack("!BBQ", _TEXT_HEAD, 127, length) + data


def protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's `ws=`: this protocol, or uvicorn's own when the gate is not active."""
    return LeanWebSocketProtocol if GATE.active else "websockets-sansio"
