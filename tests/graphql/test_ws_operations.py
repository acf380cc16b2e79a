"""What a graphql-transport-ws client sees for each kind of operation and outcome: results,
errors before execution, errors during it, the end of a stream and its cancellation; and
queries over the legacy graphql-ws protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.gql_clients import Subscriber
from tests.support.server import ServerProcess, metric

OPS_APP = "tests.support.ops_schema:schema"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(OPS_APP) as server:
        yield server


async def run(subscriber: Subscriber, op_id: str, query: str, **payload: Any) -> list[dict[str, Any]]:
    """Send one operation; return its messages up to and including 'complete' or 'error'."""
    return await _operation(subscriber, "subscribe", op_id, {"query": query, **payload})


async def _operation(subscriber: Subscriber, start: str, op_id: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Start one operation with a `start` message of either protocol; its messages, ids left out."""
    await subscriber.send({"id": op_id, "type": start, "payload": payload})
    messages = []
    while True:
        message = await subscriber.recv()
        assert message.get("id") == op_id, message
        messages.append({k: v for k, v in message.items() if k != "id"})
        if message["type"] in ("complete", "error"):
            return messages


async def test_a_query_gets_one_result_then_complete(server: ServerProcess) -> None:
    subscriber = await Subscriber.open(server.ws_url)
    try:
        assert await run(subscriber, "q", "{ hello }") == [
            {"type": "next", "payload": {"data": {"hello": "hi"}}}, {"type": "complete"}]
        masked = await run(subscriber, "q", "{ boom }")  # the id is free again once complete
        assert masked[0]["payload"]["errors"][0]["message"] == "Unexpected error."
        assert masked[1:] == [{"type": "complete"}]
    finally:
        await subscriber.close()


async def test_an_invalid_operation_gets_an_error_and_the_connection_stays(server: ServerProcess) -> None:
    subscriber = await Subscriber.open(server.ws_url)
    try:
        [error] = await run(subscriber, "v", "{ nope }")
        assert error["type"] == "error"
        assert error["payload"][0]["message"].startswith("Cannot query field 'nope' on type 'Query'.")
        [error] = await run(subscriber, "w", "query ($n: Int!) { hello }", variables={})
        assert error["type"] == "error" and "$n" in error["payload"][0]["message"]
        assert (await run(subscriber, "v", "{ hello }"))[0]["payload"] == {"data": {"hello": "hi"}}
    finally:
        await subscriber.close()


@pytest.mark.parametrize("query, operation_name, reason", [
    ("{ hello", None, "Syntax Error"),
    ("query A { hello } query B { hello }", "C", 'Unknown operation named "C".'),
])
async def test_an_unreadable_operation_closes_4400(server: ServerProcess, query: str, operation_name: str | None,
                                                   reason: str) -> None:
    subscriber = await Subscriber.open(server.ws_url)
    await subscriber.send({"id": "s", "type": "subscribe",
                           "payload": {"query": query, "operationName": operation_name}})
    with pytest.raises(ConnectionClosed):
        await subscriber.recv()
    assert subscriber.ws.close_code == 4400
    assert reason in (subscriber.ws.close_reason or "")


async def test_a_subscription_that_fails_reports_it_then_completes(server: ServerProcess) -> None:
    subscriber = await Subscriber.open(server.ws_url)
    try:
        messages = await run(subscriber, "l", "subscription { leaky { secret } }")
        assert [m["type"] for m in messages] == ["next", "next", "complete"]
        assert messages[0]["payload"]["errors"][0]["path"] == ["leaky", "secret"]
        assert [m["payload"]["errors"][0]["message"] for m in messages[:2]] == ["Unexpected error."] * 2
    finally:
        await subscriber.close()


async def test_a_stopped_subscription_sends_nothing_more_and_frees_its_id(server: ServerProcess) -> None:
    subscriber = await Subscriber.open(server.ws_url)
    try:
        await subscriber.send({"id": "t", "type": "subscribe", "payload": {"query": "subscription { ticks }"}})
        assert (await subscriber.recv())["payload"] == {"data": {"ticks": "hello None"}}
        await subscriber.send({"id": "t", "type": "complete"})
        await subscriber.send({"id": "t", "type": "subscribe", "payload": {"query": "subscription { ticks }"}})
        assert await subscriber.recv() == {"id": "t", "type": "next", "payload": {"data": {"ticks": "hello None"}}}
        await subscriber.send({"type": "ping"})
        assert json.loads(await asyncio.wait_for(subscriber.ws.recv(), 5)) == {"type": "pong"}
    finally:
        await subscriber.close()


@pytest.mark.parametrize("text", ["null", "[]", '"subscribe"'])
async def test_a_message_that_is_not_an_object_closes_4400(server: ServerProcess, text: str) -> None:
    subscriber = await Subscriber.open(server.ws_url)
    await subscriber.ws.send(text)
    with pytest.raises(ConnectionClosed):
        await subscriber.recv()
    assert subscriber.ws.close_code == 4400
    assert "must be a JSON object" in (subscriber.ws.close_reason or "")


async def run_legacy(subscriber: Subscriber, op_id: str, query: str, **payload: Any) -> list[dict[str, Any]]:
    """One operation over the legacy graphql-ws protocol, up to 'complete' or 'error'."""
    return await _operation(subscriber, "start", op_id, {"query": query, **payload})


async def test_legacy_graphql_ws_runs_queries_with_the_same_rules(server: ServerProcess) -> None:
    """subscriptions-transport-ws carries queries and mutations too (gql's apollo mode and Apollo's
    old WebSocketLink send everything over it): one `data`, then `complete`, with the limits,
    error masking and metrics of every other operation."""
    errors_before = metric(server, "gqlchannels_graphql_errors_total", operation="query")
    subscriber = await Subscriber.open(server.ws_url, "graphql-ws")
    try:
        assert await run_legacy(subscriber, "q", "{ hello }") == [
            {"type": "data", "payload": {"data": {"hello": "hi"}}}, {"type": "complete"}]
        masked = await run_legacy(subscriber, "q", "{ boom }")
        assert masked[0]["payload"]["errors"][0]["message"] == "Unexpected error."
        assert "hunter2" not in json.dumps(masked) and masked[1:] == [{"type": "complete"}]
        deep = "{ node { " + "child { " * 25 + "value" + " }" * 26 + " }"
        [refused] = await run_legacy(subscriber, "d", deep)
        assert refused["type"] == "error" and "exceeds maximum operation depth" in refused["payload"]["message"]
        # The connection still serves, subscriptions included.
        await subscriber.send({"id": "t", "type": "start", "payload": {"query": "subscription { ticks }"}})
        assert (await subscriber.recv())["payload"] == {"data": {"ticks": "hello None"}}
    finally:
        await subscriber.close()
    assert metric(server, "gqlchannels_graphql_errors_total", operation="query") >= errors_before + 1


async def test_pong_echoes_the_pings_payload(server: ServerProcess) -> None:
    """As graphql-ws's reference server: the payload comes back (clients match or time pings with it)."""
    subscriber = await Subscriber.open(server.ws_url)
    try:
        await subscriber.send({"type": "ping", "payload": {"sent": 1234, "id": "p1"}})
        assert json.loads(await asyncio.wait_for(subscriber.ws.recv(), 5)) == {
            "type": "pong", "payload": {"sent": 1234, "id": "p1"}}
        await subscriber.send({"type": "ping", "payload": None})
        assert json.loads(await asyncio.wait_for(subscriber.ws.recv(), 5)) == {"type": "pong"}
        await subscriber.send({"type": "ping", "payload": "not an object"})  # graphql-ws refuses it: 4400
        with pytest.raises(ConnectionClosed):
            await subscriber.recv()
        assert subscriber.ws.close_code == 4400 and "payload must be an object" in subscriber.ws.close_reason
    finally:
        await subscriber.close()
