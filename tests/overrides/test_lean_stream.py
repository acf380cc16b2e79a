"""The lean subscription stream (overrides/strawberry_stream.py) yields what Strawberry's own
`_stream` yields, in the same order, with the extensions' hooks run as before: for plain
events, field errors, a failing source stream, early closing, pre-execution errors, queries,
and extensions that ask for each result."""

from __future__ import annotations

import copy
import types
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from gqlchannels.config.limits import Limits
from gqlchannels.graphql.extension import with_server_extensions
from gqlchannels.overrides import strawberry_stream
from gqlchannels.overrides.strawberry_extensions import create_lean_extensions_runner

CLOSED: list[str] = []
LOG: list[Any] = []


@strawberry.type
class Item:
    n: int

    @strawberry.field
    def checked(self) -> int:
        if self.n == 2:
            raise ValueError("two is refused")
        return self.n


@strawberry.type
class Query:
    hello: str = "hi"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def items(self, upto: int, fail_at: int = -1, tag: str = "") -> AsyncGenerator[Item, None]:
        try:
            for n in range(upto):
                if n == fail_at:
                    raise RuntimeError("the source failed")
                yield Item(n=n)
        finally:
            CLOSED.append(tag)


class ResultHooks(SchemaExtension):
    """Asks for every result: the lean path must leave these to Strawberry."""

    async def on_stream_result(self, result: Any) -> AsyncGenerator[None, None]:  # type: ignore[override]
        LOG.append(("stream result", result.data))
        yield

    def get_results(self) -> dict[str, Any]:
        return {"seen": True}


class LastResult(SchemaExtension):
    """What an operation hook sees of the operation's result when the stream ends."""

    async def on_operation(self) -> AsyncGenerator[None, None]:  # type: ignore[override]
        yield
        result = self.execution_context.result
        LOG.append(("operation result", getattr(result, "data", None), getattr(result, "errors", None)))


def pair(*extensions: type[SchemaExtension]) -> tuple[strawberry.Schema, strawberry.Schema]:
    """Strawberry's stream and the lean one, on the same schema and the same (lean) runner."""
    stock = strawberry.Schema(Query, subscription=Subscription, extensions=list(extensions))
    stock.create_extensions_runner = create_lean_extensions_runner  # type: ignore[method-assign]
    lean = copy.copy(stock)
    lean._stream = types.MethodType(strawberry_stream.lean_stream, lean)  # type: ignore[method-assign]
    return stock, lean


def outcome(result: Any) -> tuple:
    errors = [(e.message, e.path) for e in result.errors] if result.errors else result.errors
    return type(result).__name__, result.data, errors, result.extensions


async def run(schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None,
              take: int | None = None) -> list[Any]:
    LOG.clear()
    CLOSED.clear()
    stream = await schema.stream(query, variable_values=variables)
    seen = []
    async for result in stream:
        seen.append(outcome(result))
        if take is not None and len(seen) == take:
            break
    await stream.aclose()
    return [seen, list(LOG), list(CLOSED)]


ITEMS = "subscription($upto: Int!, $failAt: Int! = -1) { items(upto: $upto, failAt: $failAt, tag: \"t\") { n } }"
CHECKED = "subscription { items(upto: 4) { n checked } }"
CASES = [
    pytest.param(ITEMS, {"upto": 3}, None, id="plain events"),
    pytest.param(CHECKED, None, None, id="a field error in an event"),
    pytest.param(ITEMS, {"upto": 5, "failAt": 2}, None, id="the source stream fails"),
    pytest.param(ITEMS, {"upto": 5}, 2, id="closed early"),
    pytest.param(ITEMS, {}, None, id="missing variable"),
    pytest.param("subscription { nope }", None, None, id="invalid document"),
    pytest.param("{ hello }", None, None, id="a query"),
]


@pytest.mark.parametrize("extensions", [(), (LastResult,), (ResultHooks, LastResult)],
                         ids=["no extension", "an operation hook", "result hooks"])
@pytest.mark.parametrize(("query", "variables", "take"), CASES)
async def test_the_lean_stream_yields_what_strawberrys_does(query: str, variables: Any, take: int | None,
                                                            extensions: tuple) -> None:
    stock, lean = pair(*extensions)
    expected = await run(stock, query, variables, take)
    assert await run(lean, query, variables, take) == expected


async def test_results_without_errors_take_the_lean_path() -> None:
    """What the lean path yields, as Strawberry's ExecutionResult, with the context's result set."""
    _, lean = pair(LastResult)
    seen, log, closed = await run(lean, ITEMS, {"upto": 2})
    assert seen == [("ExecutionResult", {"items": {"n": 0}}, None, {}),
                    ("ExecutionResult", {"items": {"n": 1}}, None, {})]
    assert log == [("operation result", {"items": {"n": 1}}, None)]
    assert closed == ["t"]


def test_the_served_schema_streams_through_the_lean_stream() -> None:
    schema = strawberry.Schema(Query, subscription=Subscription)
    served = with_server_extensions(schema, Limits(), introspection=True, debug=False)
    uses_lean = getattr(served._stream, "__func__", None) is strawberry_stream.lean_stream
    assert uses_lean == strawberry_stream.GATE.active
    assert getattr(schema._stream, "__func__", None) is strawberry.Schema._stream  # the user's schema is not changed
