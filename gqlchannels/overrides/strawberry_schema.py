"""The served copy of a user's Strawberry schema: what of it reaches into Strawberry (a fix).

- `graphql_schema(schema)`: the graphql-core schema Strawberry builds (its `_schema`), which
  the server validates documents against itself (cached, and off the event loop).
- `serve_as_info_schema(served)`: resolvers get the served copy as `info.schema` (Strawberry
  finds it through the graphql-core schema's `_strawberry_schema`), so what they execute
  through it obeys the same limits, masking and introspection setting. The copy gets its own
  graphql-core schema object to point back to it; the user's schema object is not changed.
- STRAWBERRY_VALIDATION_RULES: the rules Strawberry adds to graphql-core's specified ones
  when it validates (from its internal modules), which the server's own validation adds too.
- `prepare_first(served, prepare)`: Strawberry parses and validates an operation in its
  `_prepare_operation_async`; `prepare(context, extensions_runner)` runs before it and may
  answer instead (the server prepares uncached documents in a worker thread there).

With another Strawberry these are not used: Strawberry validates (with the server's rules
added to its own), on the event loop, and resolvers see the user's schema as `info.schema`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLSchema
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from . import Kind, override

GATE = override(
    "strawberry-served-schema", Kind.FIX, {"strawberry-graphql": ">=0.341,<0.342"},
    stock="Strawberry's validation on the event loop, and the user's schema as info.schema",
)

STRAWBERRY_VALIDATION_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)


def graphql_schema(schema: Any) -> GraphQLSchema | None:
    """The graphql-core schema of a Strawberry schema, None when the gate is not active."""
    if not GATE.active:
        return None
    found = getattr(schema, "_schema", None)
    return found if isinstance(found, GraphQLSchema) else None


def serve_as_info_schema(served: Any) -> None:
    """Make resolvers find `served` (a copy of a Strawberry schema) as `info.schema`."""
    original = graphql_schema(served)
    if original is None:
        return
    copied = object.__new__(type(original))  # not copy.copy: GraphQLSchema's rebuilds the schema
    copied.__dict__.update(original.__dict__)
    copied._strawberry_schema = served  # type: ignore[attr-defined]
    served._schema = copied


def prepare_first(served: Any, prepare: Callable[[Any, Any], Awaitable[Any]]) -> None:
    """Run `prepare(context, extensions_runner)` before Strawberry's own preparation of every
    operation of `served`; what it returns other than None is the operation's answer."""
    if not GATE.active or not hasattr(type(served), "_prepare_operation_async"):
        return
    strawberry_prepare = type(served)._prepare_operation_async

    async def prepare_operation(context: Any, extensions_runner: Any) -> Any:
        answer = await prepare(context, extensions_runner)
        if answer is not None:
            return answer
        return await strawberry_prepare(served, context, extensions_runner)

    served._prepare_operation_async = prepare_operation
