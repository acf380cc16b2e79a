"""Schemas whose own extensions add results to every message, edit each streamed result, and
wrap every operation: the server's shortcuts around Strawberry's extension runner must leave
all of them working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import strawberry
from strawberry.extensions import SchemaExtension


class StampEveryResult(SchemaExtension):
    def get_results(self) -> dict[str, Any]:
        return {"stamp": "from get_results"}

    def on_stream_result(self, result: Any) -> Iterator[None]:  # type: ignore[override]
        if result.data is not None:
            result.data["count"] = result.data["count"] * 100  # edited before it is sent
        yield


HOOK_LOG: list[tuple[str, str]] = []  # (query, what an operation hook saw), in order


class SyncOperationHook(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        HOOK_LOG.append((self.execution_context.query or "", "sync enter"))
        try:
            yield
        finally:
            HOOK_LOG.append((self.execution_context.query or "", "sync exit"))


class AsyncOperationHook(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        HOOK_LOG.append((self.execution_context.query or "", "async enter"))
        try:
            yield
        finally:  # a subscription the client stops ends with CancelledError thrown in here
            HOOK_LOG.append((self.execution_context.query or "", "async exit"))


class CallableOperationHook(SchemaExtension):
    def on_operation(self) -> None:  # type: ignore[override]
        HOOK_LOG.append((self.execution_context.query or "", "callable"))


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"

    @strawberry.field
    def hook_log(self, of: str) -> list[str]:
        return [seen for query, seen in HOOK_LOG if query == of]


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, to: int) -> AsyncGenerator[int, None]:
        for n in range(1, to + 1):
            yield n

    @strawberry.subscription
    async def forever(self) -> AsyncGenerator[int, None]:
        yield 1
        await asyncio.sleep(3600)
        yield 2


stamped = strawberry.Schema(query=Query, subscription=Subscription, extensions=[StampEveryResult])
plain = strawberry.Schema(query=Query, subscription=Subscription)
hooked = strawberry.Schema(query=Query, subscription=Subscription,
                           extensions=[SyncOperationHook, AsyncOperationHook, CallableOperationHook])
