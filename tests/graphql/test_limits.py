"""Limits and security settings, each at and just over its bound, over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.gql_clients import Subscriber, graphql_post
from tests.support.server import ServerProcess

OPS_APP = "tests.support.ops_schema:schema"
BODY_LIMIT = 2000
WS_LIMIT = 3000


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    with ServerProcess(
        OPS_APP, "--max-body-size", str(BODY_LIMIT), "--max-ws-message-size", str(WS_LIMIT),
        "--max-depth", "4", "--max-tokens", "60", "--max-aliases", "3", "--max-subscriptions", "2",
        "--connection-init-timeout", "1", "--allowed-origins", "https://app.example",
    ) as server:
        yield server


def padded_body(size: int) -> bytes:
    """A valid query request of exactly `size` bytes."""
    base = json.dumps({"query": "{ hello }", "pad": ""}).encode()
    body = json.dumps({"query": "{ hello }", "pad": "x" * (size - len(base))}).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("chunked", [False, True])
def test_body_at_limit_is_served_and_over_it_is_413(limited: ServerProcess, chunked: bool) -> None:
    def post(body: bytes) -> httpx.Response:
        content = iter([body[:100], body[100:]]) if chunked else body  # chunked: no content-length
        return httpx.post(f"{limited.url}/graphql", content=content, headers={"content-type": "application/json"})

    assert post(padded_body(BODY_LIMIT)).json() == {"data": {"hello": "hi"}}
    over = post(padded_body(BODY_LIMIT + 1))
    assert over.status_code == 413
    assert f"({BODY_LIMIT} bytes)" in over.json()["errors"][0]["message"]
    assert graphql_post(limited.url, "{ hello }")["data"] == {"hello": "hi"}


async def test_websocket_message_over_limit_closes_1009(limited: ServerProcess) -> None:
    subscriber = await Subscriber.open(limited.ws_url)
    await subscriber.ws.send(json.dumps({"type": "ping", "payload": {"pad": "x" * (WS_LIMIT - 100)}}))
    assert (await subscriber.ws.recv()) is not None  # under the limit: answered with a pong
    await subscriber.ws.send(json.dumps({"type": "ping", "payload": {"pad": "x" * WS_LIMIT}}))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(subscriber.ws.recv(), 10)
    assert subscriber.ws.close_code == 1009  # message too big


@pytest.mark.parametrize(("query", "ok"), [
    # Depth counts the levels below the top-level field, as QueryDepthLimiter does.
    ("{ node { child { child { child { value } } } } }", True),  # depth 4
    ("{ node { child { child { child { child { value } } } } } }", False),  # depth 5
    ("{ a: hello b: hello c: hello }", True),
    ("{ a: hello b: hello c: hello d: hello }", False),
    ("{ " + "hello " * 55 + "}", True),
    ("{ " + "hello " * 60 + "}", False),
])
def test_query_depth_aliases_and_tokens(limited: ServerProcess, query: str, ok: bool) -> None:
    response = httpx.post(f"{limited.url}/graphql", json={"query": query})
    assert response.status_code == 200
    result = response.json()
    assert ("errors" not in result) is ok, result
    if not ok:
        assert any(word in result["errors"][0]["message"] for word in ("depth", "aliases", "token")), result


async def test_subscriptions_per_connection_limit(limited: ServerProcess) -> None:
    subscriber = await Subscriber.open(limited.ws_url)
    try:
        for op_id in ("1", "2", "3"):
            await subscriber.send({"id": op_id, "type": "subscribe", "payload": {"query": "subscription { ticks }"}})
        answers = {}
        while len(answers) < 3:
            message = await subscriber.recv()
            answers[message["id"]] = message
        assert answers["1"]["type"] == answers["2"]["type"] == "next"
        assert answers["3"]["type"] == "error"
        assert "limit" in answers["3"]["payload"][0]["message"].lower()
    finally:
        await subscriber.close()


async def test_connection_init_timeout_closes_4408(limited: ServerProcess) -> None:
    async with connect(limited.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4408


@pytest.mark.parametrize(("origin", "allowed"), [
    ("https://app.example", True),
    ("https://evil.example", False),
    (None, True),  # not a browser: no Origin, nothing to hijack
])
async def test_websocket_origin_allow_list(limited: ServerProcess, origin: str | None, allowed: bool) -> None:
    headers = {"Origin": origin} if origin else {}
    if allowed:
        subscriber = await Subscriber.open(limited.ws_url, additional_headers=headers)
        await subscriber.close()
    else:
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            subscriber = await Subscriber.open(limited.ws_url, additional_headers=headers)


async def test_cross_site_websocket_refused_by_default() -> None:
    with ServerProcess(OPS_APP) as server:
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            await Subscriber.open(server.ws_url, additional_headers={"Origin": "https://evil.example"})
        same_site = await Subscriber.open(server.ws_url, additional_headers={"Origin": server.url})
        await same_site.close()


def test_unexpected_errors_masked_unless_debug(limited: ServerProcess) -> None:
    masked = graphql_post(limited.url, "{ boom }")["errors"][0]["message"]
    assert masked == "Unexpected error." and "hunter2" not in masked
    assert "hunter2" in limited.log()  # logged for the operator, with its traceback
    with ServerProcess(OPS_APP, "--debug") as debug:
        assert "hunter2" in graphql_post(debug.url, "{ boom }")["errors"][0]["message"]


@pytest.mark.parametrize("debug", [False, True])
async def test_subscription_errors_masked_unless_debug(debug: bool) -> None:
    with ServerProcess(OPS_APP, *(["--debug"] if debug else [])) as server:
        subscriber = await Subscriber.open(server.ws_url)
        try:
            await subscriber.subscribe("subscription { leaky { secret } }", {})
            field_error = await subscriber.recv()
            assert field_error["type"] == "next" and field_error["payload"]["data"] is None
            stream_error = await subscriber.recv()
            assert stream_error["type"] == "next" and stream_error["payload"]["data"] is None
            messages = [e["message"] for m in (field_error, stream_error) for e in m["payload"]["errors"]]
            if debug:
                assert all("hunter2" in text for text in messages), messages
            else:
                assert messages == ["Unexpected error.", "Unexpected error."]
        finally:
            await subscriber.close()
        # The operator still sees what went wrong: the real error, with its traceback, in the log.
        assert "hunter2" in server.log() and "KeyError" in server.log()


def test_client_mistakes_are_not_logged_as_server_errors() -> None:
    """An invalid variable is the client's mistake: one INFO line, no ERROR and no traceback
    (Strawberry logs it at ERROR with a traceback). A resolver's crash still is an ERROR."""
    with ServerProcess(OPS_APP) as server:
        refused = graphql_post(server.url, "query($s: Float!) { slow(seconds: $s) }", {"s": "soon"})
        assert "Float cannot represent" in refused["errors"][0]["message"]
        log = server.log()
        assert "GraphQL error returned to the client" in log
        assert "ERROR" not in log and "Traceback" not in log, log[-2000:]
        graphql_post(server.url, "{ boom }")
        assert "ERROR" in server.log() and "Traceback" in server.log()


def test_graphiql_introspection_passes_the_default_limits() -> None:
    from graphql import get_introspection_query

    query = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                    schema_description=True, input_value_deprecation=True)
    with ServerProcess(OPS_APP) as server:
        result = graphql_post(server.url, query)
    assert "errors" not in result, result["errors"]
    assert result["data"]["__schema"]["queryType"]["name"] == "Query"


def test_introspection_can_be_switched_off(limited: ServerProcess) -> None:
    assert graphql_post(limited.url, "{ __schema { queryType { name } } }")["data"]["__schema"]["queryType"]["name"] == "Query"
    with ServerProcess(OPS_APP, "--no-introspection") as closed:
        result = graphql_post(closed.url, "{ __schema { queryType { name } } }")
        assert "introspection" in result["errors"][0]["message"].lower()
        assert graphql_post(closed.url, "{ hello }")["data"] == {"hello": "hi"}
