"""Limits on what one client may ask of the server, and the schema extensions enforcing them.

Every limit is a number a client can hit by accident or on purpose; hitting it is a clear
4xx (or a close code), never memory growth and never a 500.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema import BaseSchema

from .errors import LayerUnavailable
from .routing import ASGIApp, Receive, Scope, Send, send_json


CACHED_DOCUMENTS = 1000  # distinct GraphQL documents whose parse and validation are kept


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_size: int = 1024 * 1024  # bytes of one HTTP request body
    max_depth: int = 20  # GraphiQL's full introspection query passes both (tests/test_limits.py)
    max_tokens: int = 5000
    max_aliases: int = 50
    max_subscriptions: int = 100  # operations in flight on one WebSocket
    connection_init_timeout: float = 10.0  # seconds a WebSocket may wait before connection_init


def should_mask_error(error: GraphQLError) -> bool:
    """Mask what a resolver did not mean to say (a KeyError's text, a database URL);
    keep errors raised on purpose: GraphQLError, and the layer being unavailable."""
    original = error.original_error
    if original is None or isinstance(original, (GraphQLError, LayerUnavailable)):
        return False
    return True


class ReportingParserCache(ParserCache):
    """ParserCache, minus a crash: its on_parse raises a document's syntax error outside
    the block where Strawberry turns parse errors into a request error, which `schema.stream`
    (WebSocket and SSE operations) does not catch. On a syntax error this leaves the document
    unparsed, Strawberry parses it itself and reports the error as it should."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        except GraphQLError:
            pass  # not cached either: lru_cache keeps no exceptions
        yield


def with_server_extensions(schema: BaseSchema, limits: Limits, *, introspection: bool,
                           debug: bool) -> BaseSchema:
    """A copy of `schema` that also runs the limit, introspection and masking extensions.

    A copy, so the user's schema object (perhaps shared with their tests) is not changed.
    """
    # The depth and alias limiters build their validation rule classes when instantiated;
    # made once here and shared, so the validation cache sees the same rules every time
    # (per-request instances gave new classes, and a cache miss, on every request).
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    extensions: list[Any] = [
        # Bounded caches of parsed and validated documents: clients send the same few
        # documents over and over, and parsing plus validating them is most of a small
        # request's time. Validation includes the limits, so they are cached too.
        functools.partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        functools.partial(AddValidationRules, rules),
        functools.partial(ReportingParserCache, maxsize=CACHED_DOCUMENTS),
        functools.partial(ValidationCache, maxsize=CACHED_DOCUMENTS),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    if not debug:
        extensions.append(functools.partial(MaskErrors, should_mask_error=should_mask_error))
    served = copy.copy(schema)
    served.extensions = (*schema.extensions, *extensions)  # type: ignore[attr-defined]
    return served


class BodyLimit:
    """Refuse an HTTP body over `max_bytes` with 413, reading at most that much of it.

    Channels buffers a whole body in memory before handing it over; this sits in front, so
    an endless or oversized upload costs at most `max_bytes`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self.refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def refuse(self, send: Send) -> None:
        await send_json(send, 413, (
            f'{{"errors":[{{"message":"request body is larger than the server accepts '
            f'({self.max_bytes} bytes); send a smaller request"}}]}}'
        ).encode())
