"""A real server whose broker goes away and comes back, through a TCP proxy."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gql_clients import SEND_MESSAGE, Subscriber, graphql_post
from tests.support.server import CHAT_APP, ServerProcess
from tests.support.tcp_proxy import TCPProxy


@pytest.fixture()
def proxied_server(amqp_url: str) -> Iterator[tuple[ServerProcess, TCPProxy]]:
    with TCPProxy() as proxy:
        url = proxy.url(query="heartbeat=2&reconnect_max_delay=1&publish_timeout=2")
        with ServerProcess(CHAT_APP, "--layer", url) as server:
            yield server, proxy


async def test_outage_mutation_errors_in_time_queries_work_and_subscriptions_resume(
        proxied_server: tuple[ServerProcess, TCPProxy]) -> None:
    server, proxy = proxied_server
    room = f"outage-{uuid.uuid4().hex[:8]}"
    subscriber = await Subscriber.open(server.ws_url)
    try:
        await subscriber.join_room(room)
        proxy.refuse()
        proxy.cut()
        async with httpx.AsyncClient(timeout=20) as client:
            deadline = time.monotonic() + 15
            while (await client.get(f"{server.url}/readyz")).status_code != 503:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert (await client.get(f"{server.url}/readyz")).json()["reason"].startswith(
                "channel layer is not connected to the broker: ")
            # A query that does not touch the layer is served throughout.
            assert (await client.post(f"{server.url}/graphql", json={"query": "{ hello }"})).json() == \
                {"data": {"hello": "Hello, world!"}}
            started = time.monotonic()
            failed = (await client.post(f"{server.url}/graphql", json={
                "query": SEND_MESSAGE, "variables": {"room": room, "msg": "during outage"}})).json()
            assert time.monotonic() - started < 6  # publish_timeout=2
            assert failed["data"] is None
            assert "could not publish to group" in failed["errors"][0]["message"]

            proxy.restore()
            deadline = time.monotonic() + 20
            while (await client.get(f"{server.url}/readyz")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            sent = (await client.post(f"{server.url}/graphql", json={
                "query": SEND_MESSAGE, "variables": {"room": room, "msg": "after outage"}})).json()
            assert sent == {"data": {"sendChatMessage": True}}
        # The subscription made before the outage receives again, without resubscribing.
        assert await subscriber.messages_until("after outage", timeout=15)
    finally:
        await subscriber.close()
    assert graphql_post(server.url, "{ hello }")["data"]["hello"] == "Hello, world!"


def test_shutdown_mid_outage_is_bounded(proxied_server: tuple[ServerProcess, TCPProxy]) -> None:
    import os
    import signal

    server, proxy = proxied_server
    proxy.refuse()
    proxy.cut()
    time.sleep(1)
    started = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(20) == 0
    assert time.monotonic() - started < 8
