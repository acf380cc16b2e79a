"""A schema for the in-process layer's tests: a subscription that says when it listens, then
yields every message sent to its room; a mutation that publishes `count` messages at once.

The burst's publishes run side by side, so the burst is in every listener's channel before
any of them runs again: with `memory://?capacity=N`, what a listener's channel cannot
hold is dropped (and counted), deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

MESSAGE_TYPE = "room.message"


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hello"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def burst(self, info: Info, room: str, count: int, tag: str | None = None) -> int:
        # All at once: each publish is a task of its own, and every one of them has put its
        # message in the listeners' channels before any listener runs again.
        events = info.context["events"]
        await asyncio.gather(*(events.publish(f"room-{room}", {"type": MESSAGE_TYPE, "text": f"{tag or room} {number}"})
                               for number in range(count)))
        return count


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def room(self, info: Info, room: str) -> AsyncGenerator[str, None]:
        async with info.context["events"].listen([f"room-{room}"], type=MESSAGE_TYPE) as listener:
            yield "listening"
            async for message in listener:
                yield message["text"]


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
