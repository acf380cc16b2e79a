"""A schema for comparing the lean HTTP handler with the full route: lists, nesting, variables,
errors raised on purpose and by accident, permissions, the context, the response object."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.types import Info

from gqlchannels import AuthRequest, Unauthorized


class HasPass(BasePermission):
    message = "a pass is required"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context["request"].headers.get("x-pass") == "yes"


@strawberry.type
class Author:
    name: str
    country: str | None


@strawberry.type
class Book:
    id: strawberry.ID
    title: str
    pages: int
    rating: float | None

    @strawberry.field
    def author(self) -> Author:
        return Author(name=f"author of {self.title}", country=None if int(self.id) % 2 else "NZ")

    @strawberry.field
    async def blurb(self) -> str:
        if int(self.id) % 5 == 0:
            raise KeyError("postgres://admin:hunter2@db/internal")  # masked
        return f"{self.title}, {self.pages} pages"


def book(number: int) -> Book:
    return Book(id=strawberry.ID(str(number)), title=f"Book {number}", pages=100 + number,
                rating=None if number % 3 == 0 else number / 4)


BOOKS_ADDED = itertools.count(1)
AUTH_CALLS = itertools.count(1)
AUTH_CALLS_SEEN = [0]


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    @strawberry.field
    def books(self, count: int = 3, offset: int = 0) -> list[Book]:
        if count > 50:
            raise GraphQLError(f"at most 50 books, not {count}")
        return [book(offset + number) for number in range(count)]

    @strawberry.field
    def book(self, id: strawberry.ID) -> Book | None:  # noqa: A002
        return book(int(id)) if id.isdigit() else None

    @strawberry.field
    def required_book(self) -> Book:
        raise GraphQLError("no such book")  # a non-null root field: data is null

    @strawberry.field
    def boom(self) -> str | None:
        raise ValueError("secret detail")

    @strawberry.field(permission_classes=[HasPass])
    def secret(self) -> str:
        return "the secret"

    @strawberry.field
    def echo_header(self, info: Info, name: str) -> str | None:
        return info.context["request"].headers.get(name)

    @strawberry.field
    def path(self, info: Info) -> str:
        return info.context["request"].consumer.scope["path"]

    @strawberry.field
    def context_keys(self, info: Info) -> list[str]:
        return list(info.context)

    @strawberry.field
    def whoami(self, info: Info) -> str | None:
        user = info.context.get("user")
        return None if user is None else str(user)

    @strawberry.field
    def transport(self, info: Info) -> str:
        """Which route served: the lean handler's consumer stand-in or Channels' consumer."""
        return type(info.context["request"].consumer).__name__

    @strawberry.field
    def auth_calls(self) -> int:
        return AUTH_CALLS_SEEN[0]

    @strawberry.field
    def set_response(self, info: Info, status: int = 200, header: str = "") -> str:
        response = info.context["response"]
        response.status_code = status
        if header:
            response.headers["X-Lean"] = header
        return "set"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def add_book(self, title: str) -> Book:
        number = next(BOOKS_ADDED)
        return Book(id=strawberry.ID(str(1000 + number)), title=title, pages=number, rating=None)

    @strawberry.mutation
    async def shout(self, info: Info, group: str) -> bool:
        await info.context["events"].publish(group, {"type": "shout"})
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self) -> AsyncGenerator[int, None]:
        yield 1


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


class StampResults(SchemaExtension):
    """A user extension: its hooks run only on Strawberry's execution, so the lean handler
    leaves such a schema to the full route."""

    def on_operation(self) -> Iterator[None]:
        yield

    def get_results(self) -> dict[str, Any]:
        return {"stamp": "from the user's extension"}


extended_schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=[StampResults])


def auth(request: AuthRequest) -> str:
    """'good-token' is alice; every call is counted (auth_calls)."""
    AUTH_CALLS_SEEN[0] = next(AUTH_CALLS)
    if request.bearer_token == "good-token":
        return "alice"
    raise Unauthorized("a valid bearer token is required")
