"""A user's schema extensions run on every subscription message, as under Strawberry alone;
a schema without such hooks sends messages without an "extensions" member, as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from graphql import FieldNode, GraphQLError, ValidationRule
from strawberry.extensions import SchemaExtension

from gqlchannels.config.limits import Limits
from gqlchannels.graphql.extension import with_server_extensions
from gqlchannels.testing import GraphQLTestClient
from tests.support.extensions_schema import HOOK_LOG
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
    # On the wire: whether a message has an "extensions" member at all is the point.
    with ServerProcess(f"tests.support.extensions_schema:{schema}") as server:
        assert await payloads(server) == expected


AROUND_AN_OPERATION = ["sync enter", "async enter", "callable", "async exit", "sync exit"]


async def hooks_seen(client: GraphQLTestClient, query: str) -> list[str]:
    return (await client.execute("query($of: String!) { hookLog(of: $of) }", {"of": query})).data["hookLog"]


async def test_operation_hooks_wrap_each_operation_and_a_subscription_until_it_ends() -> None:
    # Which hooks run, and when, is resolver-level: served in process (gqlchannels.testing),
    # where leaving a subscription waits until the server has ended it. The log is this
    # process's now: start it empty.
    HOOK_LOG.clear()
    async with GraphQLTestClient("tests.support.extensions_schema:hooked") as client:
        # Sync, async and plain hooks entered in order, the generators exited in reverse.
        assert (await client.execute("query One { hello }")).data == {"hello": "hi"}
        assert await hooks_seen(client, "query One { hello }") == AROUND_AN_OPERATION

        async with client.subscribe("subscription { forever }") as stream:
            assert (await stream.next()).data == {"forever": 1}
            assert await hooks_seen(client, "subscription { forever }") == AROUND_AN_OPERATION[:3]  # still open
        # Leaving completed the operation and waited for the server to end it.
        assert await hooks_seen(client, "subscription { forever }") == AROUND_AN_OPERATION


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
