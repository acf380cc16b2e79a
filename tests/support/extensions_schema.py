"""A schema whose own extension adds results to every message and edits each streamed
result: the server's per-event shortcuts must leave both working."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
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


@strawberry.type
class Query:
    hello: str = "hi"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, to: int) -> AsyncGenerator[int, None]:
        for n in range(1, to + 1):
            yield n


stamped = strawberry.Schema(query=Query, subscription=Subscription, extensions=[StampEveryResult])
plain = strawberry.Schema(query=Query, subscription=Subscription)
