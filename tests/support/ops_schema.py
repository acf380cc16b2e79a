"""A schema for operations tests: slow, failing, user-aware and deep fields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from gqlchannels import AuthRequest, Unauthorized


@strawberry.type
class Node:
    @strawberry.field
    def child(self) -> Node:
        return Node()

    value: int = 1


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"

    @strawberry.field
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @strawberry.field
    def boom(self) -> str:
        raise KeyError("postgres://admin:hunter2@db/internal")

    @strawberry.field
    def whoami(self, info: Info) -> str:
        return str(info.context.get("user"))

    @strawberry.field
    def node(self) -> Node:
        return Node()


@strawberry.type
class Leaky:
    @strawberry.field
    def secret(self) -> str:
        raise KeyError("postgres://admin:hunter2@db/internal")


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def leaky(self) -> AsyncGenerator[Leaky, None]:
        """One event whose field fails, then the stream itself fails: neither may leak its text."""
        yield Leaky()
        raise KeyError("postgres://admin:hunter2@db/internal")

    @strawberry.subscription
    async def ticks(self, info: Info) -> AsyncGenerator[str, None]:
        yield f"hello {info.context.get('user')}"
        while True:
            await asyncio.sleep(3600)
            yield "tick"


schema = strawberry.Schema(query=Query, subscription=Subscription)


def auth(request: AuthRequest) -> str:
    """Accept the bearer token 'good-token' as alice."""
    if request.bearer_token == "good-token":
        return "alice"
    raise Unauthorized("a valid bearer token is required")
