"""Subscriptions that start in the ways a test client must tell apart: listening late, through
Strawberry's listen_to_channel, never; and fields that show what the context holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

JOIN_DELAY = 0.3  # seconds a late listener waits before it joins its groups


@strawberry.type
class Query:
    @strawberry.field
    def context(self, info: Info) -> list[str]:
        """What the server put in the context, besides Strawberry's own."""
        return sorted(key for key in info.context if key != "response")

    @strawberry.field
    def header(self, info: Info, name: str) -> str | None:
        return info.context["request"].headers.get(name)

    @strawberry.field
    def user(self, info: Info) -> str | None:
        user = info.context.get("user")
        return None if user is None else str(user)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def late(self, info: Info, groups: list[str]) -> AsyncGenerator[str, None]:
        """Listens only after a while, with nothing sent before: a publish right after
        subscribing would be lost unless the client waits until it listens."""
        await asyncio.sleep(JOIN_DELAY)
        async for message in info.context["events"].listen(groups):
            yield message["text"]

    @strawberry.subscription
    async def page_style(self, info: Info, group: str) -> AsyncGenerator[str, None]:
        """Strawberry's Channels page's way, on the connection's own channel."""
        async with info.context["ws"].listen_to_channel("note", groups=[group]) as messages:
            async for message in messages:
                yield message["text"]

    @strawberry.subscription
    async def stuck(self) -> AsyncGenerator[str, None]:
        """Waits for something that is not the channel layer, and never gets it."""
        await asyncio.Event().wait()
        yield "never"

    @strawberry.subscription
    async def whoami(self, info: Info) -> AsyncGenerator[str, None]:
        yield str(info.context.get("user"))


schema = strawberry.Schema(query=Query, subscription=Subscription)
