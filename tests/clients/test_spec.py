"""Judged by other servers' yardsticks: graphql-http's server audit and graphql-ws's reference
client (both from npm, run with Node against the real server), and the close codes of
graphql-ws's PROTOCOL.md."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.node import run_node
from tests.support.server import CHAT_APP, ServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP) as running:
        yield running


def test_graphql_over_http_audit_passes_without_warnings(node: str, server: ServerProcess) -> None:
    results = run_node(node, "audit.mjs", f"{server.url}/graphql")
    assert len(results) >= 60
    not_ok = [r for r in results if r["status"] != "ok"]
    assert not_ok == [], json.dumps(not_ok, indent=1)


@pytest.mark.parametrize(("query", "status", "has_data"), [
    ("{ hello(", 400, False),  # does not parse
    ("{ nope }", 400, False),  # does not validate
    ('mutation { sendChatMessage(room: {id: "bad id!"}, message: "x") }', 200, True),  # a field error
    ("{ hello }", 200, True),
])
def test_graphql_response_json_statuses(server: ServerProcess, query: str, status: int, has_data: bool) -> None:
    response = httpx.post(f"{server.url}/graphql", json={"query": query},
                          headers={"accept": "application/graphql-response+json"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert ("data" in response.json()) is has_data
    # Clients that accept only application/json keep the classic answer: 200 with "data": null.
    classic = httpx.post(f"{server.url}/graphql", json={"query": query}, headers={"accept": "application/json"})
    assert classic.status_code == 200 and classic.headers["content-type"].startswith("application/json")


def test_graphql_ws_reference_client(node: str, server: ServerProcess) -> None:
    events = run_node(node, "ws_client.mjs", server.ws_url, "reference-client")
    kinds = [event["event"] for event in events]
    assert events[0] == {"event": "query", "result": {"data": {"hello": "Hello, graphql-ws!"}}}
    assert {"event": "mutation", "result": {"data": {"sendChatMessage": True}}} in events
    assert {"event": "next", "message": "from graphql-ws"} in events
    assert "done" in kinds


async def close_code(server: ServerProcess, *frames: dict, wait_ack: bool = False) -> int | None:
    async with connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        for index, frame in enumerate(frames):
            await ws.send(json.dumps(frame))
            if wait_ack and index == 0:  # the first frame is connection_init: let it be acknowledged
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code


SUBSCRIBE = {"id": "1", "type": "subscribe", "payload": {
    "query": 'subscription { joinChatRooms(rooms: [{id: "codes"}]) { message } }'}}


async def test_protocol_close_codes(server: ServerProcess) -> None:
    init = {"type": "connection_init"}
    assert await close_code(server, {"type": "connection_init", "payload": "not an object"}) == 4400
    assert await close_code(server, SUBSCRIBE) == 4401  # subscribe before connection_ack
    assert await close_code(server, init, SUBSCRIBE, SUBSCRIBE, wait_ack=True) == 4409  # duplicate id
    assert await close_code(server, init, init, wait_ack=True) == 4429  # too many initialisation requests
