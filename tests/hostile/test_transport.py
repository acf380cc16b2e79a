"""Hostile input at the transport, as an attacker sends it, against a real server.

Deeply nested JSON, header bytes that are not UTF-8, WebSockets that never say
connection_init, client text that would forge log lines, connections that never finish their
request head or come in floods: each gets a 4xx, the protocol's close code or a bounded wait,
never a 5xx, a dropped connection or a traceback in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gqlchannels.overrides import channels_consumers
from gqlchannels.overrides.uvicorn_websocket import LeanWebSocketProtocol
from tests.support.server import ServerProcess, free_port

OPS_APP = "tests.support.ops_schema:schema"
AUTH_HOOK = "tests.support.ops_schema:auth"
AUTH = {"authorization": "Bearer good-token"}  # ops_schema.auth's user "alice"
INIT = json.dumps({"type": "connection_init", "payload": AUTH})
DEEP = 1025  # one level past orjson's limit; 2 KB of brackets
DEEP_ARRAY = "[" * DEEP + "]" * DEEP
DEEP_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def faults_in(log: str) -> list[str]:
    """Lines showing the server failing: an ERROR record or a traceback."""
    return [line for line in log.splitlines() if line.startswith("ERROR") or "Traceback" in line]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(OPS_APP, "--sse", "--auth", AUTH_HOOK, "--connection-init-timeout", "1") as server:
        yield server


@pytest.fixture
def log_checked(server: ServerProcess) -> Iterator[ServerProcess]:
    """The shared server, whose log must show no failure from what the test sent."""
    start = len(server.log())
    yield server
    time.sleep(0.2)  # the server writes its last line after the client has its answer
    assert not faults_in(server.log()[start:]), server.log()[start:][:4000]


async def close_code(url: str, protocol: str, *messages: str, timeout: float = 10) -> tuple[int | None, str]:
    """Send `messages`, then read until the server closes: its close code and reason."""
    async with connect(url, subprotocols=[protocol], open_timeout=10) as ws:
        for message in messages:
            await ws.send(message)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await ws.recv()
        except ConnectionClosed as closed:
            return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "no close frame")
        except TimeoutError:
            return None, f"still open after {timeout} s"


# -- JSON nested deeper than the decoder goes ------------------------------------------------


@pytest.mark.parametrize("body", [
    DEEP_ARRAY,
    '{"query": "{ hello }", "variables": {"v": %s}}' % DEEP_ARRAY,
    '{"query": "{ hello }", "extensions": %s}' % DEEP_OBJECT,
], ids=["body", "variables", "extensions"])
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE_JSON])
def test_deeply_nested_json_body_is_a_400_with_a_graphql_error(log_checked: ServerProcess, body: str,
                                                               accept: str) -> None:
    response = httpx.post(f"{log_checked.url}/graphql", content=body, timeout=10,
                          headers={**AUTH, "content-type": "application/json", "accept": accept})
    assert response.status_code == 400, response.text
    assert response.json() == {"errors": [{"message": "Unable to parse the JSON in the request: it is nested too deeply"}]}


@pytest.mark.parametrize("parameter", ["variables", "extensions"])
def test_deeply_nested_get_parameter_is_a_400(log_checked: ServerProcess, parameter: str) -> None:
    response = httpx.get(f"{log_checked.url}/graphql", params={"query": "{ hello }", parameter: DEEP_ARRAY},
                         headers={**AUTH, "accept": "application/json"}, timeout=10)
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["errors"][0]["message"]


def test_deeply_nested_json_over_sse_is_a_400(log_checked: ServerProcess) -> None:
    response = httpx.post(f"{log_checked.url}/graphql", content=DEEP_ARRAY, timeout=10,
                          headers={**AUTH, "content-type": "application/json", "accept": "text/event-stream"})
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("after_init", [False, True], ids=["before-init", "after-init"])
async def test_deeply_nested_websocket_message_closes_4400(log_checked: ServerProcess, protocol: str,
                                                           after_init: bool) -> None:
    messages = [INIT] if after_init else []
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    messages.append('{"type": "%s", "id": "1", "payload": {"query": "{ hello }", "variables": %s}}'
                    % (start, DEEP_ARRAY))
    skipped = not channels_consumers.GATE.active and protocol == "graphql-ws" and after_init
    code, reason = await close_code(log_checked.ws_url, protocol, *messages, timeout=2 if skipped else 10)
    if channels_consumers.GATE.active:
        assert (code, reason) == (4400, "Invalid message: JSON nested too deeply")
    elif protocol == "graphql-transport-ws":  # Strawberry's own adapter: JSON it cannot read
        assert (code, reason) == (4400, "WebSocket message must be valid JSON")
    else:  # Strawberry's own adapter skips what it cannot read over the legacy protocol, as before
        assert code == (None if after_init else 4408), (code, reason)


@pytest.mark.parametrize("document", [
    "{ hello(x: " + "[" * 10_000 + "]" * 10_000 + ") }",
    "{ hello(x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + ") }",
    "{ " + "node { " * 10_000 + "value" + " }" * 10_000 + " }",
], ids=["list-values", "object-values", "selections"])
def test_deeply_nested_document_is_a_request_error(log_checked: ServerProcess, document: str) -> None:
    # graphql-core's parser stops at 200 levels; this guards that it stays so.
    response = httpx.post(f"{log_checked.url}/graphql", json={"query": document}, timeout=10,
                          headers={**AUTH, "accept": GRAPHQL_RESPONSE_JSON})
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(("body", "message"), [
    ('"{ hello }"', "A GraphQL request must be a JSON object"),
    ("null", "A GraphQL request must be a JSON object"),
    ('{"query": "{ hello }", "operationName": %s}' % ("[" * 1000 + "]" * 1000),
     "The GraphQL operation's `operationName` must be a string or null, if provided."),
    ('{"query": "query A { hello }", "operationName": 5}',
     "The GraphQL operation's `operationName` must be a string or null, if provided."),
], ids=["string-body", "null-body", "nested-operation-name", "number-operation-name"])
def test_request_that_is_not_a_graphql_request_object_is_a_400(log_checked: ServerProcess, body: str,
                                                               message: str) -> None:
    response = httpx.post(f"{log_checked.url}/graphql", content=body, timeout=10,
                          headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json() == {"errors": [{"message": message}]}


def test_request_errors_are_graphql_error_bodies(log_checked: ServerProcess) -> None:
    """What Strawberry refuses before GraphQL is answered as JSON, like every other error."""
    malformed = httpx.post(f"{log_checked.url}/graphql", content="{not json", timeout=10,
                           headers={**AUTH, "content-type": "application/json"})
    unauthorized = httpx.post(f"{log_checked.url}/graphql", json={"query": "{ hello }"}, timeout=10)
    for response, status in ((malformed, 400), (unauthorized, 401)):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json()["errors"][0]["message"]


# -- Header bytes that are not UTF-8 ---------------------------------------------------------

LATIN1_HEADERS = [(b"user-agent", b"caf\xe9"), (b"x-note", b"\xff\xfe")]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_header_bytes_that_are_not_utf8_are_read_as_latin1(log_checked: ServerProcess, method: str) -> None:
    headers = [*LATIN1_HEADERS, (b"authorization", b"Bearer good-token"), (b"accept", b"application/json")]
    query = "{ whoami }"
    if method == "GET":
        response = httpx.get(f"{log_checked.url}/graphql", params={"query": query}, headers=headers, timeout=10)
    else:
        response = httpx.post(f"{log_checked.url}/graphql", json={"query": query}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"whoami": "alice"}}


def test_header_bytes_that_are_not_utf8_over_sse(log_checked: ServerProcess) -> None:
    headers = [*LATIN1_HEADERS, (b"authorization", b"Bearer good-token"), (b"accept", b"text/event-stream")]
    response = httpx.post(f"{log_checked.url}/graphql", json={"query": "{ whoami }"}, headers=headers, timeout=10)
    assert response.status_code == 200
    assert '"whoami":"alice"' in response.text


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_header_bytes_that_are_not_utf8_in_a_websocket_handshake(log_checked: ServerProcess,
                                                                       protocol: str) -> None:
    # websockets sends header values as ISO-8859-1: "café" goes out as the byte 0xe9.
    async with connect(log_checked.ws_url, subprotocols=[protocol], open_timeout=10,
                       additional_headers={"User-Agent": "caf\xe9", "X-Note": "\xff\xfe"}) as ws:
        await ws.send(INIT)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"


# -- The legacy protocol's connection_init timeout --------------------------------------------


async def test_legacy_graphql_ws_closes_4408_without_connection_init(log_checked: ServerProcess) -> None:
    # The server runs with --connection-init-timeout 1.
    silent = [close_code(log_checked.ws_url, "graphql-ws", timeout=15) for _ in range(30)]
    results = await asyncio.gather(*silent)
    assert set(results) == {(4408, "Connection initialisation timeout")}, results


async def test_legacy_graphql_ws_stays_open_after_connection_init(log_checked: ServerProcess) -> None:
    async with connect(log_checked.ws_url, subprotocols=["graphql-ws"], open_timeout=10) as ws:
        await ws.send(INIT)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await asyncio.sleep(2)  # twice the timeout
        await ws.send(json.dumps({"type": "start", "id": "1", "payload": {"query": "subscription { ticks }"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["payload"] == {"data": {"ticks": "hello alice"}}


# -- Log lines forged through what clients send -----------------------------------------------

FORGED = "ERROR:    forged"


async def test_client_text_cannot_start_a_log_line(log_checked: ServerProcess) -> None:
    start = len(log_checked.log())
    names = [f"Q\n{FORGED} by a newline", f"Q\r\n{FORGED} by CRLF", f"Q\u2028{FORGED} by U+2028",
             f"Q\x1b[2J{FORGED} by an escape sequence"]
    for name in names:  # each names no operation of the document: the error quotes it
        subscribe = {"type": "subscribe", "id": "1", "payload": {"query": "query Q { hello }", "operationName": name}}
        code, _ = await close_code(log_checked.ws_url, "graphql-transport-ws", INIT, json.dumps(subscribe))
        assert code == 4400
    await asyncio.sleep(0.2)
    log = log_checked.log()[start:]
    lines = log.splitlines()
    assert not [line for line in lines if "forged" in line and not line.startswith("INFO:")], log
    assert "\x1b" not in log and "\u2028" not in log
    for escaped in ("Q\\nERROR:", "Q\\r\\nERROR:", "Q\\u2028ERROR:", "Q\\x1b[2JERROR:"):
        assert escaped in log, (escaped, log)


def _record(message: str, *args: object, exc_info: object = None, name: str = "gqlchannels") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def test_text_formatter_escapes_messages_and_exception_texts_but_keeps_tracebacks() -> None:
    from gqlchannels.config.logs import TextFormatter

    formatter = TextFormatter("%(levelprefix)s %(message)s", use_colors=False)
    assert formatter.format(_record("operation %s failed", "x\nERROR:    y")) == \
        "ERROR:    operation x\\nERROR:    y failed"
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("bad input: a\nERROR:    forged") from inner
    except ValueError:
        text = formatter.format(_record("Exception in ASGI application\n", exc_info=sys.exc_info()))
    lines = text.splitlines()
    assert lines[0] == "ERROR:    Exception in ASGI application"  # uvicorn's trailing newline dropped
    assert "Traceback (most recent call last):" in lines  # the traceback keeps its lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert lines[-1] == "ValueError: bad input: a\\nERROR:    forged"
    assert not [line for line in lines[1:] if line.startswith("ERROR")]


def test_access_formatter_escapes_its_arguments_and_keeps_colours() -> None:
    from gqlchannels.config.logs import AccessTextFormatter

    formatter = AccessTextFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                                    use_colors=True)
    record = _record('%s - "%s %s HTTP/%s" %d', "10.0.0.1\r\nERROR: x", "GET", "/p\x1b[31m", "1.1", 200,
                     name="uvicorn.access")
    record.levelno, record.levelname = logging.INFO, "INFO"
    text = formatter.format(record)
    assert "\n" not in text and "\r" not in text
    assert "10.0.0.1\\r\\nERROR: x" in text and "/p\\x1b[31m" in text
    assert "\x1b[32mINFO\x1b[0m" in text  # the formatter's own colour stays


def test_text_log_format_is_configured_for_every_logger() -> None:
    from gqlchannels.config.logs import log_config

    config = log_config("info", "text")
    assert config["formatters"]["default"]["()"] == "gqlchannels.config.logs.TextFormatter"
    assert config["formatters"]["access"]["()"] == "gqlchannels.config.logs.AccessTextFormatter"


# -- Slow and idle clients, and more of them than the worker can hold --------------------------


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """One sample's value from /metrics (0 when the series does not exist yet)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == wanted:
            return float(value)
    return 0.0


def raw_connections(port: int, count: int, first_bytes: bytes = b"") -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first_bytes:
            connection.sendall(first_bytes)
        connections.append(connection)
    return connections


def answers(connections: list[socket.socket], within: float) -> list[bytes | None]:
    """What each connection receives until the server closes it (None: still open after `within`)."""
    received: dict[socket.socket, bytes] = {c: b"" for c in connections}
    open_ = set(connections)
    deadline = time.monotonic() + within
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], 0.2)
        for connection in readable:
            try:
                data = connection.recv(65536)
            except ConnectionResetError:
                data = b""
            received[connection] += data
            if not data:
                open_.discard(connection)
    return [None if c in open_ else received[c] for c in connections]


@contextmanager
def closing_all(connections: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield connections
    finally:
        for connection in connections:
            connection.close()


def status_of(answer: bytes | None) -> str | None:
    return None if answer is None else (answer.split(b"\r\n", 1)[0].decode() or "closed without an answer")


def test_connections_that_never_complete_a_request_head_are_closed() -> None:
    with ServerProcess(OPS_APP, "--header-timeout", "1") as server, ExitStack() as stack:
        idle = stack.enter_context(closing_all(raw_connections(server.port, 100)))
        partial = stack.enter_context(closing_all(raw_connections(
            server.port, 5, b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: appl")))
        leading = stack.enter_context(closing_all(raw_connections(server.port, 5, b"\r\n")))
        # A request slower than the header timeout is answered: the timeout is for the head only.
        slow = httpx.post(f"{server.url}/graphql", json={"query": "{ slow(seconds: 2) }"}, timeout=15)
        assert slow.json() == {"data": {"slow": "slept 2.0"}}
        results = answers(idle + partial + leading, within=20)
        assert {status_of(result) for result in results} == {"HTTP/1.1 408 Request Timeout"}, results[:3]
        assert metric(server, "gqlchannels_header_timeouts_total") >= 110
        time.sleep(0.2)
        warnings = [line for line in server.log().splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1, warnings  # the rest of the minute's timeouts wait for its summary
        assert "closed without complete request headers within --header-timeout 1 s" in warnings[0]


def test_a_request_body_not_complete_within_the_body_timeout_is_answered_408_and_closed() -> None:
    """A client that sends a head and then too little of its body, or trickles it, holds a
    connection (and a place under --max-connections) for --body-timeout seconds at most."""
    head = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with ServerProcess(OPS_APP, "--body-timeout", "1") as server, ExitStack() as stack:
        stalled = stack.enter_context(closing_all(raw_connections(server.port, 5, head + b'{"query":')))
        accepting_json = stack.enter_context(closing_all(raw_connections(
            server.port, 1, head.replace(b"\r\n\r\n", b"\r\nAccept: application/graphql-response+json\r\n\r\n"))))
        trickled = stack.enter_context(closing_all(raw_connections(server.port, 1, head)))
        started = time.monotonic()
        for byte in b'{"query":"{ hello }"}':  # a byte every 0.2 s, and 100 promised: never done in time
            try:
                trickled[0].sendall(bytes([byte]))
            except OSError:
                break
            if select.select(trickled, [], [], 0.2)[0]:
                break
        # A request slower than the body timeout once its body is in is answered: the timeout is the body's.
        slow = httpx.post(f"{server.url}/graphql", json={"query": "{ slow(seconds: 2) }"}, timeout=15)
        assert slow.json() == {"data": {"slow": "slept 2.0"}}
        results = answers(stalled + accepting_json + trickled, within=10)
        assert time.monotonic() - started < 10
        assert {status_of(result) for result in results} == {"HTTP/1.1 408 Request Timeout"}, results
        assert all(b"\r\nconnection: close\r\n" in result.lower() for result in results if result)
        assert results[0].endswith(b'{"errors":[{"message":"the request body was not complete within 1 seconds"}]}')
        assert b"content-type: application/graphql-response+json" in results[5].lower()
        assert metric(server, "gqlchannels_http_requests_total", status="408", operation="none") == 7


def test_a_kept_alive_connection_that_trickles_a_head_is_closed() -> None:
    with ServerProcess(OPS_APP, "--header-timeout", "1") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b'{"status":"ok"}'):  # the whole first response, however it arrives
                first += connection.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":  # one byte every 0.2 s: never done in time
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    break
                if select.select([connection], [], [], 0.2)[0]:
                    break
            assert status_of(answers([connection], within=10)[0]) == "HTTP/1.1 408 Request Timeout"
            assert time.monotonic() - started < 10


def test_a_request_head_over_64_kib_is_refused_with_431() -> None:
    with ServerProcess(OPS_APP) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(1000):  # up to 1 MB of headers; the server stops reading them long before
                    connection.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
            except OSError:
                pass  # closed on us: the answer is already in the receive buffer
            assert status_of(answers([connection], within=10)[0]) == "HTTP/1.1 431 Request Header Fields Too Large"


async def test_connections_over_the_cap_are_answered_503_and_1013() -> None:
    with ServerProcess(OPS_APP, "--max-connections", "20", "--header-timeout", "60") as server:
        with closing_all(raw_connections(server.port, 20)):
            deadline = time.monotonic() + 10
            while metric(server, "gqlchannels_connections_open") < 21 and time.monotonic() < deadline:
                time.sleep(0.1)  # /metrics is served over the cap: its own connection is the 21st
            refused = httpx.post(f"{server.url}/graphql", json={"query": "{ hello }"}, timeout=10)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json() == {"errors": [{"message": "the server is at its connection limit; retry in 5 seconds"}]}
            assert await close_code(server.ws_url, "graphql-transport-ws") == (
                1013, "the server is at its connection limit; try again later")
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200  # probes still answered
            assert metric(server, "gqlchannels_connections_refused_total", answer="503") == 1
            assert metric(server, "gqlchannels_connections_refused_total", answer="1013") == 1
        deadline = time.monotonic() + 10
        while metric(server, "gqlchannels_connections_open") > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        served = httpx.post(f"{server.url}/graphql", json={"query": "{ hello }"}, timeout=10)
        assert served.json() == {"data": {"hello": "hi"}}  # room again, served again
        warnings = [line for line in server.log().splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1 and "connections over --max-connections 20: 1 HTTP answered 503" in warnings[0]


def test_a_flood_of_idle_connections_leaves_new_clients_answered() -> None:
    """With the open-file limit the default cap derives from: 256 descriptors, 400 idle sockets."""
    command = ("-c", f'ulimit -n 256 && exec "{sys.executable}" -m gqlchannels serve "$@"', "gqlchannels")
    with ServerProcess(OPS_APP, executable="/bin/bash", command=command) as server:
        with closing_all(raw_connections(server.port, 400)):
            time.sleep(0.5)  # let the server take them all in
            health = httpx.get(f"{server.url}/healthz", timeout=10)
            assert health.status_code == 200
            query = httpx.post(f"{server.url}/graphql", json={"query": "{ hello }"}, timeout=10)
            assert query.status_code == 503 and query.headers["retry-after"] == "5"
        assert not faults_in(server.log())


def test_max_connections_beyond_the_open_file_limit_is_refused_at_start() -> None:
    command = ("-c", f'ulimit -n 256 && exec "{sys.executable}" -m gqlchannels serve "$@"', "gqlchannels")
    server = ServerProcess(OPS_APP, "--max-connections", "1000", executable="/bin/bash", command=command)
    with pytest.raises(RuntimeError, match=r"--max-connections 1000 is more than this process can hold open"):
        server.start(ready_timeout=20)


# The same bounds with uvicorn's h11 protocol, used where httptools is not installed: a real
# uvicorn server in this process, its app a stand-in that answers every request and holds
# every WebSocket open.


async def _stand_in_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@pytest.fixture
def h11_server() -> Iterator[int]:
    from gqlchannels.config.settings import ConnectionLimits
    from gqlchannels.overrides.uvicorn_http import guarded_protocol
    from gqlchannels.server.connection_guard import ConnectionGuard

    port = free_port()
    limits = ConnectionLimits(header_timeout=1, max_connections=5, descriptor_ceiling=None)
    config = uvicorn.Config(_stand_in_app, port=port, log_level="warning", lifespan="on",
                            http=guarded_protocol(ConnectionGuard(limits), h11_only=True), ws=LeanWebSocketProtocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


async def test_h11_protocol_has_the_same_bounds(h11_server: int) -> None:
    url = f"ws://127.0.0.1:{h11_server}/"
    held = [await connect(url, open_timeout=10) for _ in range(5)]  # the cap: 5 open connections
    try:
        with closing_all(raw_connections(h11_server, 1)) as idle:
            over = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{h11_server}/", timeout=10)
            assert over.status_code == 503 and over.headers["retry-after"] == "5"
            assert await close_code(url, "graphql-transport-ws") == (
                1013, "the server is at its connection limit; try again later")
            answer = await asyncio.to_thread(answers, idle, 10)
            assert status_of(answer[0]) == "HTTP/1.1 408 Request Timeout"
    finally:
        for ws in held:
            await ws.close()
    served = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{h11_server}/", timeout=10)
    assert served.text == "ok"
