"""With every override off (GQLCHANNELS_OVERRIDES_OFF=all, as when every dependency were a
release they were not written for), the packages' own code serves: the server still answers
queries, limits, subscriptions over both protocols, server-sent events and a clean stop."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gql_clients import SEND_MESSAGE, Subscriber, graphql_post
from tests.support.server import CHAT_APP, ServerProcess, clean_env

ALL_OFF = clean_env(GQLCHANNELS_OVERRIDES_OFF="all")


@pytest.fixture(scope="module")
def stock_server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP, "--sse", "--max-aliases", "1", env=ALL_OFF) as server:
        yield server


def test_says_which_overrides_are_off(stock_server: ServerProcess) -> None:
    log = stock_server.log()
    assert "overrides off (GQLCHANNELS_OVERRIDES_OFF)" in log
    for name in ("uvicorn-websocket-protocol", "strawberry-served-schema", "graphql-core-per-event-memos"):
        assert name in log


def test_queries_and_limits(stock_server: ServerProcess) -> None:
    assert graphql_post(stock_server.url, "{ hello }") == {"data": {"hello": "Hello, world!"}}
    refused = graphql_post(stock_server.url, "{ a: hello b: hello }")  # Strawberry validates, with the limits
    assert refused["errors"][0]["message"] == "2 aliases found. Allowed: 1", refused


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_subscriptions_receive_mutations(stock_server: ServerProcess, protocol: str) -> None:
    subscriber = await Subscriber.open(stock_server.ws_url, protocol)
    try:
        room = f"stock-{protocol}"
        await subscriber.join_room(room)
        graphql_post(stock_server.url, SEND_MESSAGE, {"room": room, "msg": "through the stock code"})
        assert (await subscriber.messages_until("through the stock code"))[-1] == "through the stock code"
    finally:
        await subscriber.close()


def test_server_sent_events(stock_server: ServerProcess) -> None:
    response = httpx.post(f"{stock_server.url}/graphql", json={"query": "{ hello }"}, timeout=10,
                          headers={"accept": "text/event-stream"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert 'data: {"data":{"hello":"Hello, world!"}}' in response.text


def test_stops_cleanly_with_two_workers(amqp_url: str) -> None:
    server = ServerProcess(CHAT_APP, "--workers", "2", "--layer", amqp_url, env=ALL_OFF).start()
    assert graphql_post(server.url, "{ hello }")["data"] == {"hello": "Hello, world!"}
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0, server.log()
