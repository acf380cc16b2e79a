"""graphql-core 3.3.1 and later keep about 1 KB per subscription event until the subscription
ends (its per-event executors share memo dictionaries keyed by per-event lists). The schema the
server runs must not: a subscription's memory stays flat however many messages it delivers."""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
import weakref
from collections.abc import AsyncGenerator
from typing import Any, NewType

import strawberry
from graphql import parse, version_info
from strawberry.extensions import SchemaExtension
from strawberry.schema import BaseSchema
from strawberry.schema.config import StrawberryConfig

from gqlchannels.config.limits import Limits
from gqlchannels.graphql.documents import DOCUMENTS
from gqlchannels.graphql.extension import with_server_extensions
from gqlchannels.overrides.graphql_executor import LEAN_GATE

EVENTS = 3000
MEASURED_FROM = 1000  # past warm-up: caches and the first allocations are settled by then


@strawberry.type
class Message:
    id: str
    text: str


@strawberry.type
class Query:
    hello: str = "world"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def messages(self) -> AsyncGenerator[Message, None]:
        for n in range(EVENTS):
            yield Message(id=str(n), text="hi")


async def retained_bytes_per_event(schema: BaseSchema) -> float:
    """Bytes still allocated per event while the subscription is running."""
    stream = await schema.subscribe("subscription { messages { id text } }")
    seen = 0
    tracemalloc.start()
    try:
        async for result in stream:
            assert not result.errors, result.errors
            seen += 1
            if seen == MEASURED_FROM:
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
            if seen == EVENTS:
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert seen == EVENTS
    return (after - before) / (EVENTS - MEASURED_FROM)


# graphql-core 3.3.0 keyed that memo by the identity of the list's items and kept nothing per
# event; 3.3.1 keys it by the list's own identity and keeps each event's list alive with it.
KEEPS_MEMORY_PER_EVENT = version_info[:3] >= (3, 3, 1)


async def test_plain_strawberry_keeps_memory_per_event() -> None:
    """The breakage, reproduced where it exists: if this ever fails on a newer graphql-core,
    graphql-core fixed it and gqlchannels.overrides.graphql_executor's memo handling can go."""
    retained = await retained_bytes_per_event(strawberry.Schema(query=Query, subscription=Subscription))
    if KEEPS_MEMORY_PER_EVENT:
        assert retained > 500
    else:
        assert retained < 50


async def test_served_schema_keeps_no_memory_per_event() -> None:
    served = with_server_extensions(strawberry.Schema(query=Query, subscription=Subscription), Limits(),
                                    introspection=True, debug=False)
    assert await retained_bytes_per_event(served) < 50


async def test_user_executor_class_is_kept() -> None:
    """A schema with its own execution context class still runs it, with the fix on top."""
    base = strawberry.Schema(query=Query, subscription=Subscription).execution_context_class
    calls: list[str] = []

    class Custom(base):  # type: ignore[misc, valid-type]
        def build_per_event_executor(self, payload):  # type: ignore[no-untyped-def]
            calls.append("custom")
            return super().build_per_event_executor(payload)

    schema = strawberry.Schema(query=Query, subscription=Subscription, execution_context_class=Custom)
    served = with_server_extensions(schema, Limits(), introspection=True, debug=False)
    assert issubclass(served.execution_context_class, Custom)
    assert await retained_bytes_per_event(served) < 50
    assert len(calls) == EVENTS


COERCED: list[str] = []  # one entry each time graphql-core coerces the literal argument


def parse_counted_literal(node: Any, variables: Any = None) -> str:
    COERCED.append(node.value)
    return node.value


Counted = NewType("Counted", str)
COUNTED = StrawberryConfig(scalar_map={Counted: strawberry.scalar(name="Counted", serialize=str, parse_value=str,
                                                                  parse_literal=parse_counted_literal)})


@strawberry.type
class CountingSubscription:
    @strawberry.subscription
    async def coercions(self, window: Counted) -> AsyncGenerator[int, None]:
        for _ in range(3):
            yield len(COERCED)  # how many times the argument was coerced so far


class SeesArguments(SchemaExtension):
    seen: list[dict[str, object]] = []

    def resolve(self, _next, root, info, *args, **kwargs):  # type: ignore[no-untyped-def]
        if info.field_name == "coercions":
            SeesArguments.seen.append(kwargs)
        return _next(root, info, *args, **kwargs)


async def coercion_counts(schema: BaseSchema) -> list[int]:
    COERCED.clear()
    stream = await schema.subscribe('subscription { coercions(window: "seven") }')
    results = [result async for result in stream]
    assert not any(result.errors for result in results), results
    return [result.data["coercions"] for result in results]  # type: ignore[index]


async def test_event_arguments_are_coerced_once_not_for_every_event() -> None:
    plain = strawberry.Schema(query=Query, subscription=CountingSubscription, config=COUNTED)
    at_start, *_ = counts = await coercion_counts(plain)  # validation and subscribing coerce it too
    assert counts == [at_start, at_start + 1, at_start + 2]  # Strawberry alone: again for each event
    served = with_server_extensions(plain, Limits(), introspection=True, debug=False)
    if LEAN_GATE.active:
        assert await coercion_counts(served) == [at_start] * 3
    else:  # graphql-core's own executor serves: as Strawberry alone
        assert await coercion_counts(served) == counts


async def test_a_resolve_hook_still_sees_the_arguments_of_every_event() -> None:
    SeesArguments.seen.clear()
    schema = strawberry.Schema(query=Query, subscription=CountingSubscription, extensions=[SeesArguments],
                               config=COUNTED)
    served = with_server_extensions(schema, Limits(), introspection=True, debug=False)
    at_start, *_ = counts = await coercion_counts(served)
    assert counts == [at_start, at_start + 1, at_start + 2]
    assert [kwargs["window"] for kwargs in SeesArguments.seen] == ["seven"] * 3


async def test_the_event_schema_does_not_keep_a_discarded_schema_alive() -> None:
    schema = strawberry.Schema(query=Query, subscription=CountingSubscription, config=COUNTED)
    served = with_server_extensions(schema, Limits(), introspection=True, debug=False)
    assert await coercion_counts(served)  # made and cached its event schema
    graphql_schema = weakref.ref(served._schema)
    del schema, served
    DOCUMENTS.clear()  # the bounded cache of validated documents holds schemas too
    # The validation thread and the loop let go of their last work item when they get to it
    # (later on a loaded machine): wait for that, up to a bound a real leak never meets.
    for _ in range(200):
        gc.collect()
        if graphql_schema() is None:
            break
        await asyncio.sleep(0.01)
    assert graphql_schema() is None


@strawberry.type
class Tagged:
    @strawberry.field
    def tag(self, info: strawberry.Info) -> str:
        return info.input_extensions["tag"]


@strawberry.type
class TaggedSubscription:
    @strawberry.subscription
    async def tagged(self) -> AsyncGenerator[Tagged, None]:
        for _ in range(3):
            yield Tagged()


def served_schema(subscription: type) -> BaseSchema:
    return with_server_extensions(strawberry.Schema(query=Query, subscription=subscription), Limits(),
                                  introspection=True, debug=False)


async def test_every_event_sees_the_operation_extensions() -> None:
    """(`info.input_extensions`.) They are kept in a slot of the executor, which each
    event's copy must carry over."""
    stream = await served_schema(TaggedSubscription).subscribe("subscription { tagged { tag } }",
                                                                operation_extensions={"tag": "blue"})
    results = [result async for result in stream]
    assert [(r.data, r.errors) for r in results] == [({"tagged": {"tag": "blue"}}, None)] * 3


def test_the_executor_a_subscription_keeps_has_a_small_dictionary() -> None:
    """CPython shares dictionary keys between instances with at most 30 attributes; graphql-core's
    executor has 32, and each subscription keeps one for its whole life."""
    document = parse("subscription { messages { id text } }")
    plain = strawberry.Schema(query=Query, subscription=Subscription)
    served = served_schema(Subscription)
    plain_size = sys.getsizeof(vars(plain.execution_context_class.build(plain._schema, document)))
    served_size = sys.getsizeof(vars(served.execution_context_class.build(served._schema, document)))
    assert plain_size > 1000  # if this fails, graphql-core's executor shrank and SLOTTED can go
    assert served_size < 400 if LEAN_GATE.active else served_size == plain_size


async def test_a_subscription_keeps_nothing_from_its_events_in_its_executor() -> None:
    served = served_schema(Subscription)
    executor = served.execution_context_class.build(served._schema, parse("subscription { messages { id text } }"))
    for n in range(3):
        event = executor.build_per_event_executor(Message(id=str(n), text="hi"))  # Strawberry: the event is the root
        assert event.execute_operation(False).data == {"messages": {"id": str(n), "text": "hi"}}
        assert event._relevant_sub_fields  # the event's own memo was filled...
    assert executor._relevant_sub_fields == {}  # ...and the subscription's was not
