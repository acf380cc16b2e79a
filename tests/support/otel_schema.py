"""The chat example's schema, plus a query saying which OpenTelemetry modules the serving
process has imported (tests/telemetry: off must mean not even imported), and one saying
which HTTP route answered (the lean handler's request has a consumer of its own)."""

from __future__ import annotations

import sys

import strawberry
from strawberry.types import Info

from gqlchannels.examples.chat import Mutation, Subscription
from gqlchannels.examples.chat import Query as ChatQuery


@strawberry.type
class Query(ChatQuery):
    @strawberry.field
    def opentelemetry_modules(self) -> list[str]:
        return sorted(name for name in sys.modules if name == "opentelemetry" or name.startswith("opentelemetry."))

    @strawberry.field
    def answered_by(self, info: Info) -> str:
        return type(info.context["request"].consumer).__name__


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
