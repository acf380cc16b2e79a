"""The WebSocket protocol under uvicorn (gqlchannels/ws_server.py), seen from the wire.

What a client of any WebSocket server relies on: fragmented messages arrive whole, pings
are answered, a peer that stops answering pings is closed, malformed frames and handshakes
get the protocol's answer (1002, 1007, 400) and never a hang, and the server's own close
completes the closing handshake.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.server import CHAT_APP, ServerProcess

PROTOCOL = "graphql-transport-ws"
PING_INTERVAL = 0.5


@pytest.fixture(scope="module")
def pinging_server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--ws-ping-interval", str(PING_INTERVAL)) as server:
        yield server


class RawClient:
    """A WebSocket client that writes its own bytes: for what a good client never sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: ServerProcess, headers: dict[str, str] | None = None) -> tuple[RawClient, bytes]:
        """Connect and send a handshake; return the client and the server's response head."""
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        lines = {"Host": f"127.0.0.1:{server.port}", "Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Protocol": PROTOCOL}
        lines.update(headers or {})
        request = "GET /graphql HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines.items() if v) + "\r\n"
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return cls(reader, writer), head

    def send_frame(self, opcode: int, payload: bytes, *, masked: bool = True, fin: bool = True) -> None:
        first = (0x80 if fin else 0) | opcode
        mask_bit = 0x80 if masked else 0
        if len(payload) < 126:
            header = struct.pack("!BB", first, mask_bit | len(payload))
        else:
            header = struct.pack("!BBH", first, mask_bit | 126, len(payload))
        if masked:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.writer.write(header + payload)

    async def read_frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the server (servers do not mask)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def read_until_close(self, timeout: float = 5) -> tuple[int, list[int]]:
        """Read frames until a close frame; return its code and the opcodes seen before it."""
        seen = []
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], seen
            seen.append(opcode)

    async def at_eof(self, timeout: float = 5) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    def close(self) -> None:
        self.writer.close()


async def test_fragmented_message_arrives_whole(memory_server: ServerProcess) -> None:
    async with connect(memory_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        text = json.dumps({"type": "connection_init", "payload": {"pad": "x" * 300}})
        await ws.send([text[:10], text[10:200], text[200:]])  # three frames, one message
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "connection_ack"}


async def test_client_ping_gets_a_pong(memory_server: ServerProcess) -> None:
    async with connect(memory_server.ws_url, subprotocols=[PROTOCOL]) as ws:
        latency = await asyncio.wait_for(await ws.ping(b"are you there"), 5)
        assert latency >= 0


async def test_server_pings_and_keeps_answering_clients_open(pinging_server: ServerProcess) -> None:
    async with connect(pinging_server.ws_url, subprotocols=[PROTOCOL], ping_interval=None) as ws:
        await asyncio.sleep(PING_INTERVAL * 5)  # several pings, each answered by the client library
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "connection_ack"}


async def test_client_that_stops_answering_pings_is_closed_1011(pinging_server: ServerProcess) -> None:
    client, head = await RawClient.open(pinging_server)
    assert head.startswith(b"HTTP/1.1 101")
    try:
        code, before = await client.read_until_close(timeout=PING_INTERVAL * 10)
        assert 0x9 in before  # it was pinged, and never answered
        assert code == 1011
        assert await client.at_eof()
    finally:
        client.close()


async def test_each_connection_keeps_its_own_keepalive(pinging_server: ServerProcess) -> None:
    """All connections share one keepalive timer: a silent one is closed, while one that
    answers is pinged again and again and stays open, and so does one that pings itself."""
    silent, _ = await RawClient.open(pinging_server)
    answering, _ = await RawClient.open(pinging_server)
    library = await connect(pinging_server.ws_url, subprotocols=[PROTOCOL], ping_interval=PING_INTERVAL / 2)
    try:
        pings = 0
        silent_closed = asyncio.ensure_future(silent.read_until_close(timeout=PING_INTERVAL * 10))
        while pings < 6:
            opcode, payload = await answering.read_frame(timeout=PING_INTERVAL * 10)
            assert opcode == 0x9, opcode
            answering.send_frame(0xA, payload)
            pings += 1
        code, _ = await silent_closed
        assert code == 1011
        answering.send_frame(0x1, json.dumps({"type": "connection_init"}).encode())
        assert await answering.read_frame() == (0x1, b'{"type":"connection_ack"}')
        await library.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(library.recv(), 5)) == {"type": "connection_ack"}
    finally:
        silent.close()
        answering.close()
        await library.close()


@pytest.mark.parametrize("payload, masked, code", [
    (b'{"type": "\xff\xfe"}', True, 1007),  # invalid UTF-8 in a text frame
    (b'{"type": "connection_init"}', False, 1002),  # a client frame without a mask
], ids=["invalid-utf8-1007", "unmasked-1002"])
async def test_malformed_frame_closes_with_the_protocols_code(memory_server: ServerProcess, payload: bytes,
                                                               masked: bool, code: int) -> None:
    client, _ = await RawClient.open(memory_server)
    try:
        client.send_frame(0x1, payload, masked=masked)
        assert (await client.read_until_close())[0] == code
        assert await client.at_eof()
    finally:
        client.close()


async def test_garbage_right_after_a_message_fails_the_connection_quietly(memory_server: ServerProcess) -> None:
    """A valid message and garbage in one packet: the server closes with 1002, and the
    application, still answering the valid message, is told the client is gone instead of
    raising into the log."""
    client, _ = await RawClient.open(memory_server)
    try:
        client.send_frame(0x1, b'{"type": "connection_init"}')
        client.send_frame(0x1, b"unmasked", masked=False)  # buffered: both leave in one packet
        code, _ = await client.read_until_close()  # the ack may or may not make it out first
        assert code == 1002
        assert await client.at_eof()
    finally:
        client.close()
    await asyncio.sleep(0.5)
    assert "Exception in ASGI application" not in memory_server.log()
    assert "Unexpected ASGI message" not in memory_server.log()


async def test_handshake_without_key_is_400_not_a_hang(memory_server: ServerProcess) -> None:
    client, head = await RawClient.open(memory_server, headers={"Sec-WebSocket-Key": ""})
    try:
        assert head.startswith(b"HTTP/1.1 400"), head
        assert b"Sec-WebSocket-Key" in await asyncio.wait_for(client.reader.read(), 5)  # it says what is wrong
    finally:
        client.close()


async def test_server_close_completes_the_closing_handshake(memory_server: ServerProcess) -> None:
    """A protocol violation: the server closes (4400), echoes nothing more, and hangs up once
    the client has replied to its close frame."""
    client, _ = await RawClient.open(memory_server)
    try:
        client.send_frame(0x1, b"[1, 2]")  # valid JSON, not a message
        code, _ = await client.read_until_close()
        assert code == 4400
        client.send_frame(0x8, struct.pack("!H", 4400))
        assert await client.at_eof(timeout=2)
    finally:
        client.close()


def test_shared_header_table_keeps_no_secret_and_is_bounded() -> None:
    """Header pairs that every client sends alike are kept once for all connections;
    credentials never are (they would outlive the connection), and the table stops growing."""
    from gqlchannels.overrides import uvicorn_websocket as ws_server

    assert ws_server._scope_header("Authorization", "Bearer secret") == (b"Authorization", b"Bearer secret")
    assert ws_server._scope_header("Cookie", "session=secret") == (b"Cookie", b"session=secret")
    assert not any("secret" in value for _, value in ws_server._shared_headers)
    first = ws_server._scope_header("User-Agent", "test-agent/1")
    assert ws_server._scope_header("User-Agent", "test-agent/1") is first  # one copy for every connection
    for n in range(ws_server.MAX_SHARED_HEADERS + 10):
        ws_server._scope_header("User-Agent", f"agent/{n}")
    assert len(ws_server._shared_headers) == ws_server.MAX_SHARED_HEADERS


async def misbehaving_app(scope: dict, receive: Any, send: Any) -> Any:
    """An ASGI app for each way an application can fail a WebSocket, chosen by path."""
    if scope["type"] != "websocket":
        return None
    path = scope["path"]
    if path == "/raises-before-accept":
        raise RuntimeError("broken before accept")
    await receive()  # websocket.connect
    if path == "/returns-without-accept":
        return None
    await send({"type": "websocket.accept"})
    if path == "/raises-after-accept":
        raise RuntimeError("broken after accept")
    return "a value"  # /returns-a-value


@pytest.fixture()
async def misbehaving_server() -> AsyncIterator[int]:
    """Real uvicorn with gqlchannels' WebSocket protocol, serving misbehaving_app."""
    from gqlchannels.overrides.uvicorn_websocket import LeanWebSocketProtocol

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(misbehaving_app, port=port, ws=LeanWebSocketProtocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.05)
    yield port
    server.should_exit = True
    await asyncio.wait_for(serving, 10)


@pytest.fixture
def uvicorn_errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, also attached to uvicorn's error logger itself: a server configured in process
    earlier in the run (uvicorn's own logging config) stops "uvicorn" propagating to the root."""
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.mark.parametrize("path, log_line", [
    ("/raises-before-accept", "Exception in ASGI application"),
    ("/returns-without-accept", "ASGI callable returned without completing handshake."),
])
async def test_an_app_that_fails_the_handshake_gets_the_client_a_500(
        misbehaving_server: int, uvicorn_errors: pytest.LogCaptureFixture, path: str, log_line: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{misbehaving_server}{path}", open_timeout=5)
    assert refused.value.response.status_code == 500
    assert log_line in uvicorn_errors.text


@pytest.mark.parametrize("path, log_line", [
    ("/raises-after-accept", "Exception in ASGI application"),
    ("/returns-a-value", "ASGI callable should return None, but returned 'a value'."),
])
async def test_an_app_that_fails_after_accepting_has_the_connection_closed(
        misbehaving_server: int, uvicorn_errors: pytest.LogCaptureFixture, path: str, log_line: str) -> None:
    async with connect(f"ws://127.0.0.1:{misbehaving_server}{path}", open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert log_line in uvicorn_errors.text
