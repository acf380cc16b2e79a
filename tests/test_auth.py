"""The --auth hook over both transports: accepted users reach resolvers, the rest are refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.gql_clients import Subscriber
from tests.support.server import ServerProcess, run_cli

OPS_APP = "tests.support.ops_schema:schema"
GOOD = {"Authorization": "Bearer good-token"}


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerProcess]:
    with ServerProcess(OPS_APP, "--auth", "tests.support.ops_schema:auth") as server:
        yield server


def test_http_accepted_user_reaches_resolvers(guarded: ServerProcess) -> None:
    response = httpx.post(f"{guarded.url}/graphql", json={"query": "{ whoami }"}, headers=GOOD)
    assert response.json() == {"data": {"whoami": "alice"}}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_http_refused_is_401(guarded: ServerProcess, headers: dict[str, str]) -> None:
    response = httpx.post(f"{guarded.url}/graphql", json={"query": "{ whoami }"}, headers=headers)
    assert response.status_code == 401
    assert "a valid bearer token is required" in response.text
    assert "alice" not in response.text


async def test_websocket_accepted_with_token_in_connection_init(guarded: ServerProcess) -> None:
    async with connect(guarded.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer good-token"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription { ticks }"}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["payload"] == {"data": {"ticks": "hello alice"}}


async def test_websocket_accepted_with_token_in_upgrade_headers(guarded: ServerProcess) -> None:
    subscriber = await Subscriber.open(guarded.ws_url, additional_headers=GOOD)
    await subscriber.subscribe("subscription { ticks }", {})
    assert await subscriber.next_data() == {"ticks": "hello alice"}
    await subscriber.close()


async def test_websocket_refused_is_4403(guarded: ServerProcess) -> None:
    async with connect(guarded.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer wrong"}}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4403


async def test_legacy_protocol_refused_with_connection_error(guarded: ServerProcess) -> None:
    async with connect(guarded.ws_url, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message == {"type": "connection_error", "payload": {"message": "a valid bearer token is required"}}
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)


def test_bad_auth_path_is_one_line_error() -> None:
    result = run_cli("serve", OPS_APP, "--auth", "tests.support.ops_schema:nope")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "has no attribute 'nope' (from --auth" in result.stderr


async def test_legacy_protocol_queries_see_the_user(guarded: ServerProcess) -> None:
    async with connect(guarded.ws_url, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer good-token"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": "{ whoami }"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {
            "type": "data", "id": "1", "payload": {"data": {"whoami": "alice"}}}
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "complete", "id": "1"}


def test_a_refused_login_comes_before_persisted_queries(guarded: ServerProcess) -> None:
    """A client the hook refuses gets 401 whatever it names, and registers nothing in the
    APQ store; an accepted one still finds persisted documents with its user in the context."""
    query = "query WhoAmI { whoami }"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}}
    url = f"{guarded.url}/graphql"
    for body in ({"extensions": extensions}, {"query": query, "extensions": extensions}):
        response = httpx.post(url, json=body)
        assert response.status_code == 401 and "a valid bearer token is required" in response.text
    not_found = httpx.post(url, json={"extensions": extensions}, headers=GOOD).json()
    assert not_found["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    httpx.post(url, json={"query": query, "extensions": extensions}, headers=GOOD)
    assert httpx.post(url, json={"extensions": extensions}, headers=GOOD).json() == {"data": {"whoami": "alice"}}
