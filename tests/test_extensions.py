"""A user's schema extensions run on every subscription message, as under Strawberry alone;
a schema without such hooks sends messages without an "extensions" member, as before."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gql_clients import Subscriber
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
