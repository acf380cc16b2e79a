"""Subscriptions over server-sent events (graphql-sse, distinct connections), opt-in, and a
client that disconnects ends its subscription and leaves its groups at once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.broker import bound_groups
from tests.support.gql_clients import JOIN_ROOMS, SEND_MESSAGE
from tests.support.server import CHAT_APP, ServerProcess, metric

STREAM = {"accept": "text/event-stream"}


@pytest.fixture(scope="module")
def sse_server(amqp_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--sse", "--layer", amqp_url) as server:
        yield server


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, dict | None]]:
    kind = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data:"):
            data = line[5:].strip()
            yield kind or "message", json.loads(data) if data else None


async def test_subscription_over_sse_and_disconnect_leaves_groups(sse_server: ServerProcess) -> None:
    room = f"sse-{uuid.uuid4().hex[:8]}"
    group = f"chat-room-{room}"
    async with httpx.AsyncClient(timeout=20) as client:
        async with client.stream("POST", f"{sse_server.url}/graphql", headers=STREAM,
                                 json={"query": JOIN_ROOMS, "variables": {"rooms": [{"id": room}]}}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            kind, joined = await anext(stream)
            assert kind == "next" and joined["data"]["joinChatRooms"]["message"].endswith("just joined the room!")
            assert await asyncio.to_thread(bound_groups, group) == {group}
            assert metric(sse_server, "gqlchannels_subscriptions_active") >= 1
            await client.post(f"{sse_server.url}/graphql", json={"query": SEND_MESSAGE,
                                                                 "variables": {"room": room, "msg": "over sse"}})
            kind, message = await anext(stream)
            assert (kind, message) == ("next", {"data": {"joinChatRooms": {"id": room, "message": "over sse"}}})
        # The client closed the stream: the subscription ends and its group is left.
        closed = time.monotonic()
        while await asyncio.to_thread(bound_groups, group) and time.monotonic() - closed < 10:
            await asyncio.sleep(0.05)
        left_after = time.monotonic() - closed
        assert await asyncio.to_thread(bound_groups, group) == set()
        print(f"group left {left_after:.2f} s after the client disconnected")
        assert metric(sse_server, "gqlchannels_subscriptions_active") == 0


async def test_query_over_sse_is_one_event_then_complete(sse_server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        async with client.stream("POST", f"{sse_server.url}/graphql", headers=STREAM,
                                 json={"query": "{ hello }"}) as response:
            received = [item async for item in events(response)]
    assert received == [("next", {"data": {"hello": "Hello, world!"}}), ("complete", None)]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"query": "subscription { nope }"}, "Cannot query field 'nope'"),
    ({"query": "{ hello("}, "Syntax Error"),
    ({"variables": {}}, "needs a 'query' string"),
    ("not json", "not valid JSON"),
])
def test_sse_request_errors_are_400(sse_server: ServerProcess, body: object, fragment: str) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = httpx.post(f"{sse_server.url}/graphql", content=content,
                          headers={**STREAM, "content-type": "application/json"})
    assert response.status_code == 400
    assert fragment in response.text


def test_sse_is_off_by_default_with_a_clear_answer() -> None:
    subscription = {"query": 'subscription { joinChatRooms(rooms: [{id: "x"}]) { id } }'}
    with ServerProcess(CHAT_APP) as server:
        response = httpx.post(f"{server.url}/graphql", headers={"accept": "text/event-stream"}, json=subscription)
        assert response.status_code == 406
        assert "WebSocket" in response.json()["errors"][0]["message"]
        # A multipart subscription (which Strawberry would leak) is refused, not streamed...
        for accept in ("multipart/mixed", "application/graphql-response+json", "application/json"):
            refused = httpx.post(f"{server.url}/graphql", headers={"accept": accept}, json=subscription)
            assert "subscriptions are served over WebSocket" in refused.text, (accept, refused.text)
            assert refused.headers["content-type"].startswith(("application/json", "application/graphql-response+json"))
        # ...while a query from a client offering multipart (GraphiQL) is answered as JSON.
        query = httpx.post(f"{server.url}/graphql", json={"query": "{ hello }"},
                           headers={"accept": "application/graphql-response+json, application/json, multipart/mixed"})
        assert query.json() == {"data": {"hello": "Hello, world!"}}
