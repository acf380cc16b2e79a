"""The GraphQL clients people use, none written here, against the real server: Apollo Client,
urql, subscriptions-transport-ws, graphql-sse and graphql-request from npm (tests/spec/*.mjs,
run with Node) and gql from PyPI. Each runs a query, a subscription to a chat room, a mutation
whose message the subscription receives, then unsubscribes, closes, and leaves nothing open
on the server (its /metrics gauges back at 0)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid

import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from tests.support.node import run_node
from tests.support.server import CHAT_APP, ServerProcess, metric

HELLO = "query Hello($name: String!) { hello(name: $name) }"
SEND = "mutation Send($room: String!, $message: String!) { sendChatMessage(room: {id: $room}, message: $message) }"
JOIN = "subscription Join($room: String!) { joinChatRooms(rooms: [{id: $room}]) { id message } }"
GAUGES = ("gqlchannels_subscriptions_active", "gqlchannels_websocket_connections")


def room() -> str:
    return f"clients-{uuid.uuid4().hex[:10]}"


def assert_nothing_left_open(server: ServerProcess) -> None:
    """The gauges return to 0 (the server ends a subscription once its client has gone), and
    nothing the client did put a traceback in the log."""
    deadline = time.monotonic() + 10
    while any(metric(server, gauge) for gauge in GAUGES) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {gauge: metric(server, gauge) for gauge in GAUGES} == dict.fromkeys(GAUGES, 0.0)
    assert "Traceback" not in server.log()


NPM_CLIENTS = [  # (script, its mode argument, which server, the name it runs as)
    ("apollo_client.mjs", "graphqlwslink", "memory", "apollo graphqlwslink"),  # HttpLink + GraphQLWsLink
    ("apollo_client.mjs", "websocketlink", "memory", "apollo websocketlink"),  # everything over legacy graphql-ws
    ("urql_client.mjs", "websocket", "memory", "urql websocket"),  # default exchanges + subscriptionExchange
    ("urql_client.mjs", "sse", "memory_sse", "urql sse"),  # default exchanges, fetchSubscriptions
    ("transport_ws_client.mjs", None, "memory", "subscriptions-transport-ws"),
    ("sse_client.mjs", None, "memory_sse", "graphql-sse"),
    ("graphql_request_client.mjs", None, "memory", "graphql-request"),
]


@pytest.mark.parametrize(("script", "mode", "kind", "name"),
                         [pytest.param(*client, id=client[3].replace(" ", "-")) for client in NPM_CLIENTS])
def test_npm_client(node: str, request: pytest.FixtureRequest, script: str, mode: str | None, kind: str,
                    name: str) -> None:
    server: ServerProcess = request.getfixturevalue(f"{kind}_server")
    events = run_node(node, script, f"{server.url}/graphql", room(), *([mode] if mode else []))
    assert events[0] == {"event": "query", "result": {"data": {"hello": f"Hello, {name}!"}}}, events
    assert {"event": "mutation", "result": {"data": {"sendChatMessage": True}}} in events, events
    messages = [event["message"] for event in events if event["event"] == "next"]
    assert messages[0].endswith("just joined the room!") and f"from {name}" in messages, events
    # Measured by the script after it closed its client, while its process still ran.
    assert {"event": "left open", "subscriptions": 0, "websockets": 0} in events, events
    assert events[-1] == {"event": "done"}, events
    assert_nothing_left_open(server)


@pytest.mark.parametrize(("operations", "subscriptions"), [
    ("http", "graphql-transport-ws"),
    ("graphql-transport-ws", "graphql-transport-ws"),
    ("graphql-ws", "graphql-ws"),  # gql's apollo mode: queries and mutations over the legacy protocol too
])
async def test_gql(memory_server: ServerProcess, operations: str, subscriptions: str) -> None:
    name, chat_room = f"gql {operations}", room()
    socket = WebsocketsTransport(url=memory_server.ws_url, subprotocols=[subscriptions])
    async with Client(transport=socket) as ws_session:
        if operations == "http":
            http = Client(transport=HTTPXAsyncTransport(url=f"{memory_server.url}/graphql"))
            session = await http.connect_async()
        else:
            session = ws_session
        try:
            assert await session.execute(GraphQLRequest(HELLO, variable_values={"name": name})) == {
                "hello": f"Hello, {name}!"}
            results = ws_session.subscribe(GraphQLRequest(JOIN, variable_values={"room": chat_room}))
            joined = await asyncio.wait_for(anext(results), 10)
            assert joined["joinChatRooms"]["message"].endswith("just joined the room!")
            sent = await session.execute(GraphQLRequest(SEND, variable_values={"room": chat_room, "message": name}))
            assert sent == {"sendChatMessage": True}
            assert await asyncio.wait_for(anext(results), 10) == {"joinChatRooms": {"id": chat_room, "message": name}}
            await results.aclose()  # gql sends complete (or stop) for it
        finally:
            if operations == "http":
                await http.close_async()
    await asyncio.to_thread(assert_nothing_left_open, memory_server)


async def test_gql_ping_payload_comes_back_in_the_pong(memory_server: ServerProcess) -> None:
    socket = WebsocketsTransport(url=memory_server.ws_url, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=socket) as session:
        await session.execute(GraphQLRequest("{ hello }"))  # the connection is up and acknowledged
        socket.pong_received.clear()
        await socket.send_ping({"sent": "2024-01-01T00:00:00Z", "seq": 7})
        await asyncio.wait_for(socket.pong_received.wait(), 10)
        assert socket.payloads["pong"] == {"sent": "2024-01-01T00:00:00Z", "seq": 7}
    await asyncio.to_thread(assert_nothing_left_open, memory_server)


# --- Apollo Client's persisted queries link ----------------------------------------------------

APQ_SCRIPT = "apollo_persisted_client.mjs"
HASH_ONLY = {"query": False, "hash": True}
WITH_DOCUMENT = {"query": True, "hash": True}


def requests_of(events: list[dict]) -> list[dict]:
    return [{key: event[key] for key in ("method", "query", "hash", "status")}
            for event in events if event["event"] == "request"]


def results_of(events: list[dict]) -> list[dict]:
    return [event["result"] for event in events if event["event"] in ("query", "mutation", "next")]


def expected_results(chat_room: str) -> list[dict]:
    return [{"data": {"hello": "Hello, first!"}}, {"data": {"hello": "Hello, second!"}},
            {"data": {"sendChatMessage": True}},
            {"data": {"joinChatRooms": {"__typename": "ChatRoomMessage", "id": chat_room,
                                        "message": "Someone just joined the room!"}}}]


@pytest.mark.parametrize("method", ["post", "get"])
def test_apollo_persisted_queries_link(node: str, method: str) -> None:
    """The link sends hashes; the server answers the first PersistedQueryNotFound, the link
    sends the document once, and from then on the hash alone is served (over GET too, with
    useGETForHashedQueries; mutations always POST)."""
    chat_room = room()
    with ServerProcess(CHAT_APP) as server:
        events = run_node(node, APQ_SCRIPT, f"{server.url}/graphql", chat_room, method)
        assert events[-1] == {"event": "done"}, events
        assert results_of(events) == expected_results(chat_room), events
        hashed = "GET" if method == "get" else "POST"
        assert requests_of(events) == [
            {"method": hashed, **HASH_ONLY, "status": 200},  # Hello: PersistedQueryNotFound
            {"method": "POST", **WITH_DOCUMENT, "status": 200},  # Hello again, with its document
            {"method": hashed, **HASH_ONLY, "status": 200},  # Hello, second time: the hash is enough
            {"method": "POST", **HASH_ONLY, "status": 200},  # Send: not found
            {"method": "POST", **WITH_DOCUMENT, "status": 200},
        ], events
        assert metric(server, "gqlchannels_persisted_operations_total", outcome="miss") == 2
        # GraphQLWsLink always sends the document with its hash: the subscription registers it.
        assert metric(server, "gqlchannels_persisted_operations_total", outcome="registered") == 3
        assert metric(server, "gqlchannels_persisted_operations_total", outcome="hit") == 1
        assert_nothing_left_open(server)


def test_apollo_persisted_queries_link_against_a_server_without_apq(node: str) -> None:
    chat_room = room()
    with ServerProcess(CHAT_APP, "--no-apq") as server:
        events = run_node(node, APQ_SCRIPT, f"{server.url}/graphql", chat_room)
        assert results_of(events) == expected_results(chat_room), events
        # PersistedQueryNotSupported: the link resends the document and stops hashing.
        assert requests_of(events) == [
            {"method": "POST", **HASH_ONLY, "status": 200},
            {"method": "POST", "query": True, "hash": False, "status": 200},
            {"method": "POST", "query": True, "hash": False, "status": 200},
            {"method": "POST", "query": True, "hash": False, "status": 200},
        ], events
        assert_nothing_left_open(server)


def test_apollo_persisted_queries_link_with_only_the_apps_own_operations(node: str, tmp_path) -> None:
    """The manifest holds the documents as Apollo Client sends them (their SHA-256 ids are the
    link's hashes, as @apollo/generate-persisted-query-manifest writes them); with
    --only-persisted the app's own operations run by hash alone, over HTTP and WebSocket, and
    a query it did not ship is refused even when the link sends its text."""
    with ServerProcess(CHAT_APP) as server:  # a first run, to learn the documents the link hashes
        first = run_node(node, APQ_SCRIPT, f"{server.url}/graphql", room())
    bodies = [event["body"] for event in first if event["event"] == "document"]
    assert len(bodies) == 3, first
    manifest = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": hashlib.sha256(body.encode()).hexdigest(), "name": body.split()[1].split("(")[0],
         "type": body.split()[0], "body": body} for body in bodies]}
    (tmp_path / "persisted-query-manifest.json").write_text(json.dumps(manifest))
    chat_room = room()
    with ServerProcess(CHAT_APP, "--persisted-operations", str(tmp_path / "persisted-query-manifest.json"),
                       "--only-persisted") as server:
        events = run_node(node, APQ_SCRIPT, f"{server.url}/graphql", chat_room, "post", "{ hello(name: \"not shipped\") }")
        assert results_of(events) == expected_results(chat_room), events
        assert requests_of(events) == [
            {"method": "POST", **HASH_ONLY, "status": 200},  # Hello
            {"method": "POST", **HASH_ONLY, "status": 200},  # Hello
            {"method": "POST", **HASH_ONLY, "status": 200},  # Send
            {"method": "POST", **HASH_ONLY, "status": 200},  # the extra query: not found
            {"method": "POST", **WITH_DOCUMENT, "status": 403},  # its text: refused
        ], events
        [refused] = [event for event in events if event["event"] == "extra error"]
        assert "only persisted operations are served here" in refused["message"], refused
        assert_nothing_left_open(server)
