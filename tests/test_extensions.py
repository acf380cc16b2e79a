"""A user's schema extensions run on every subscription message, as under Strawberry alone;
a schema without such hooks sends messages without an "extensions" member, as before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.gql_clients import Subscriber, graphql_post
from tests.support.server import ServerProcess

COUNT = "subscription { count(to: 3) }"


async def payloads(server: ServerProcess) -> list[dict[str, Any]]:
    subscriber = await Subscriber.open(server.ws_url)
    try:
        await subscriber.subscribe(COUNT, {})
        received = []
        while (message := await subscriber.recv())["type"] == "next":
            received.append(message["payload"])
        assert message["type"] == "complete"
        return received
    finally:
        await subscriber.close()


@pytest.mark.parametrize("schema, expected", [
    ("stamped", [{"data": {"count": n * 100}, "extensions": {"stamp": "from get_results"}} for n in (1, 2, 3)]),
    ("plain", [{"data": {"count": n}} for n in (1, 2, 3)]),
])
async def test_user_extension_hooks_run_for_every_subscription_message(schema: str, expected: list[Any]) -> None:
    with ServerProcess(f"tests.support.extensions_schema:{schema}") as server:
        assert await payloads(server) == expected



AROUND_AN_OPERATION = ["sync enter", "async enter", "callable", "async exit", "sync exit"]


def hooks_seen(server: ServerProcess, query: str) -> list[str]:
    return graphql_post(server.url, "query($of: String!) { hookLog(of: $of) }", {"of": query})["data"]["hookLog"]


async def test_operation_hooks_wrap_each_operation_and_a_subscription_until_it_ends() -> None:
    with ServerProcess("tests.support.extensions_schema:hooked") as server:
        # Sync, async and plain hooks entered in order, the generators exited in reverse.
        assert graphql_post(server.url, "query One { hello }") == {"data": {"hello": "hi"}}
        assert hooks_seen(server, "query One { hello }") == AROUND_AN_OPERATION

        subscriber = await Subscriber.open(server.ws_url)
        try:
            await subscriber.subscribe("subscription { forever }", {})
            assert await subscriber.next_data() == {"forever": 1}
            assert hooks_seen(server, "subscription { forever }") == AROUND_AN_OPERATION[:3]  # still open
            await subscriber.send({"id": subscriber.op_id, "type": "complete"})
            seen: list[str] = []
            for _ in range(50):  # bounded: 5 s for the server to end the operation
                seen = hooks_seen(server, "subscription { forever }")
                if len(seen) == len(AROUND_AN_OPERATION):
                    break
                await asyncio.sleep(0.1)
            assert seen == AROUND_AN_OPERATION
        finally:
            await subscriber.close()
