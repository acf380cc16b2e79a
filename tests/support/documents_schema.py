"""A schema for hostile documents: a field with an argument, nested objects, an enum and an
input type whose names a "Did you mean" would give away, a resolver that fails with a secret,
and resolvers that run a query of their own through `info.schema`, in a query and in each
event of a subscription."""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info


@strawberry.enum
class Shade(enum.Enum):
    CRIMSON = "crimson"
    TEAL = "teal"


@strawberry.input
class Parcel:
    recipient: str


@strawberry.type
class Node:
    @strawberry.field
    def child(self) -> Node:
        return Node()

    value: int = 1


async def run_through_schema(info: Info, query: str) -> str:
    """Execute `query` through the schema this resolver was given; its result as JSON."""
    result = await info.schema.execute(query)
    return json.dumps({"data": result.data, "errors": [error.message for error in result.errors or []]})


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    @strawberry.field
    def node(self) -> Node:
        return Node()

    @strawberry.field
    def boom(self) -> str:
        raise KeyError("postgres://admin:hunter2@db/internal")

    @strawberry.field
    def paint(self, shade: Shade) -> str:
        return shade.value

    @strawberry.field
    def send(self, parcel: Parcel) -> str:
        return parcel.recipient

    @strawberry.field
    async def nested(self, info: Info, query: str) -> str:
        return await run_through_schema(info, query)


@strawberry.type
class Probe:
    query: strawberry.Private[str]

    @strawberry.field
    async def result(self, info: Info) -> str:
        return await run_through_schema(info, self.query)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def nested(self, query: str) -> AsyncGenerator[Probe, None]:
        yield Probe(query=query)


schema = strawberry.Schema(query=Query, subscription=Subscription)
