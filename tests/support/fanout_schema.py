"""A schema for tests across workers: a subscription that first says which worker process
holds it, then yields every message sent to its room; a mutation that sends one; a query
that takes as long as it is told; one that keeps its worker's event loop busy."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import strawberry
from strawberry.types import Info

MESSAGE_TYPE = "room.message"


@strawberry.type
class Query:
    @strawberry.field
    def worker(self) -> int:
        return os.getpid()

    @strawberry.field
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @strawberry.field
    def hold(self, seconds: float, marker: str) -> int:
        """Block this worker's event loop for `seconds` (a sync resolver runs on it), having
        first created the file `marker`: new connections go to the other worker meanwhile."""
        Path(marker).touch()
        time.sleep(seconds)
        return os.getpid()


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def send(self, info: Info, room: str, text: str) -> bool:
        await info.context["events"].publish(f"room-{room}", {"type": MESSAGE_TYPE, "text": text})
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def room(self, info: Info, room: str) -> AsyncGenerator[str, None]:
        async with info.context["events"].listen(f"room-{room}", type=MESSAGE_TYPE) as messages:
            yield f"joined worker {os.getpid()}"  # after the group is joined: from now on nothing is missed
            async for message in messages:
                yield message["text"]


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
