"""A user's schema extensions run on every subscription message, as under Strawberry alone;
a schema without such hooks sends messages without an "extensions" member, as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from graphql import FieldNode, GraphQLError, ValidationRule
from strawberry.extensions import SchemaExtension

from gqlchannels.extension import with_server_extensions
from gqlchannels.limits import Limits
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


class NoFieldNamedSecret(ValidationRule):
    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value == "secret":
            self.report_error(GraphQLError("'secret' may not be asked for"))


class AddsARuleAsAList(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = [*context.validation_rules, NoFieldNamedSecret]
        yield


@strawberry.type
class Deep:
    secret: str = "s"

    @strawberry.field
    def deep(self) -> Deep:
        return Deep()


async def test_a_users_validation_rules_and_the_servers_both_apply() -> None:
    """Even when the user's extension leaves the rules as a list, not Strawberry's tuple."""
    schema = strawberry.Schema(query=Deep, extensions=[AddsARuleAsAList])
    served = with_server_extensions(schema, Limits(max_depth=2), introspection=True, debug=False)
    assert (await served.execute("{ deep { __typename } }")).data == {"deep": {"__typename": "Deep"}}
    mine = await served.execute("{ secret }")
    assert [e.message for e in mine.errors or []] == ["'secret' may not be asked for"]
    too_deep = await served.execute("{ deep { deep { deep { __typename } } } }")
    assert "exceeds maximum operation depth" in (too_deep.errors or [])[0].message
