"""Content negotiation for GraphQL over HTTP: the client's Accept header, parsed in one place.

What a client may be answered with depends on the operation: a query or a mutation as JSON
(`application/graphql-response+json` or `application/json`) or, with --sse, as an event
stream of one result; a subscription only as an event stream (--sse). Among the answers the
server can give, the client's q-values decide (RFC 9110, section 12.5.1: the most specific
range naming a type gives its weight; q=0 refuses it). Where the client weighs JSON and
`text/event-stream` alike, a query or mutation is answered as JSON, as graphql-yoga does
(5.x, `useResultProcessors`: its JSON processor wins for any result that is not a stream,
wherever the client lists JSON) and as the graphql-sse reference server does (its handler
streams only for an Accept that is exactly `text/event-stream`); a subscription streams.
Unlike yoga we honour q-values, so `text/event-stream, application/json;q=0.5` does stream a
query, and `application/json;q=0` is not taken for JSON. The order of equally weighted types
is not a preference in RFC 9110, and is not one here. urql's default Accept for queries
(`application/graphql-response+json, application/graphql+json, application/json,
text/event-stream, multipart/mixed`) is therefore answered as JSON, with or without --sse.

For JSON, `application/graphql-response+json` lets a client tell a request error from an
execution result by the status: a document that does not parse or validate, or variables
that do not coerce, answer 400 with no `data` entry. Strawberry answers every GraphQL result
as `application/json` with 200 and `"data": null`, which stays exactly so for clients that
accept only `application/json`; for clients preferring the new type (naming it, with a weight
no lower than `application/json`'s) GraphQLResponseNegotiation rewrites the response. A
request error is recognisable from the body alone: `data` is null and no error has a `path`
(every field error has one).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from ..json_encoding import dumps_bytes
from .routing import ASGIApp, Receive, Scope, Send

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
GRAPHQL_RESPONSE_CONTENT_TYPE = GRAPHQL_RESPONSE_JSON.encode() + b"; charset=utf-8"
APPLICATION_JSON = "application/json"
EVENT_STREAM = "text/event-stream"
MULTIPART_MIXED = "multipart/mixed"
MAX_REWRITTEN_BODY = 4 * 1024 * 1024  # bigger results are streamed through untouched

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
_WEIGHT = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")  # RFC 9110's qvalue
CACHED_HEADERS = 256  # distinct Accept values whose parse is kept (clients send a handful)
CACHEABLE_LENGTH = 512  # longer values are parsed each time, so the cache stays small


@dataclasses.dataclass(frozen=True, slots=True)
class MediaRange:
    """One element of an Accept header: `type/subtype` (either may be `*`) and its weight."""

    type: str
    subtype: str
    q: float
    text: str  # as the client wrote it, parameters included

    def specificity(self, type_: str, subtype: str) -> int:
        """2 if this range names type_/subtype exactly, 1 as `type/*`, 0 as `*/*`, -1 not at all."""
        if self.type == "*":
            return 0
        if self.type != type_:
            return -1
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == subtype else -1


class Accept:
    """A parsed Accept header. An absent, empty or wholly malformed one counts as
    `application/json`, as the GraphQL over HTTP spec asks; malformed elements are skipped."""

    __slots__ = ("ranges", "_named", "_qualities")

    def __init__(self, ranges: tuple[MediaRange, ...]) -> None:
        self.ranges = ranges or (MediaRange("application", "json", 1.0, APPLICATION_JSON),)
        self._named = frozenset(f"{media_range.type}/{media_range.subtype}" for media_range in self.ranges)
        self._qualities: dict[str, float] = {}  # the few media types the server asks about; parsed headers are cached

    @classmethod
    def of(cls, header: bytes | str) -> Accept:
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        if len(header) <= CACHEABLE_LENGTH:
            return _cached_accept(header)
        return cls(_parse_ranges(header))

    def quality(self, media_type: str) -> float:
        """The weight the client gives `media_type`: that of the most specific range naming
        it (the best of equally specific ones), 0 when none does or it is refused with q=0."""
        known = self._qualities.get(media_type)
        if known is not None:
            return known
        type_, _, subtype = media_type.partition("/")
        best_specificity, best_q = -1, 0.0
        for media_range in self.ranges:
            specificity = media_range.specificity(type_, subtype)
            if specificity > best_specificity:
                best_specificity, best_q = specificity, media_range.q
            elif specificity == best_specificity >= 0:
                best_q = max(best_q, media_range.q)
        self._qualities[media_type] = best_q
        return best_q

    def names(self, media_type: str) -> bool:
        """Whether the client lists `media_type` by its own name (not by a wildcard) and accepts it."""
        return media_type in self._named and self.quality(media_type) > 0

    def json_quality(self) -> float:
        return max(self.quality(GRAPHQL_RESPONSE_JSON), self.quality(APPLICATION_JSON))

    def prefers_graphql_response_json(self) -> bool:
        """`application/graphql-response+json` named, and weighed no lower than `application/json`
        (a client that only says `*/*` keeps the classic answer, as the spec's watershed asks)."""
        return self.names(GRAPHQL_RESPONSE_JSON) and \
            self.quality(GRAPHQL_RESPONSE_JSON) >= self.quality(APPLICATION_JSON)

    def without(self, *media_types: str) -> bytes:
        """The header without the elements naming `media_types` (exactly), for an application
        that must not see them; `application/json` when nothing is left."""
        removed = {tuple(media_type.split("/", 1)) for media_type in media_types}
        kept = [media_range.text for media_range in self.ranges
                if (media_range.type, media_range.subtype) not in removed]
        return ", ".join(kept).encode("latin-1") if kept else APPLICATION_JSON.encode()


def accept_header(scope: Mapping[str, Any]) -> bytes:
    """The request's Accept header; several are one list (RFC 9110, section 5.3)."""
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"accept"]
    return values[0] if len(values) == 1 else b", ".join(values)


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at each `separator` outside quoted strings (a parameter value may be one)."""
    if '"' not in text:
        return text.split(separator)
    parts, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(text):  # one pass: no regex backtracking on hostile headers
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _parse_ranges(header: str) -> tuple[MediaRange, ...]:
    ranges = []
    for element in _split(header, ","):
        media_type, *parameters = _split(element, ";")
        media_type = media_type.strip().lower()
        if media_type == "*":  # old clients (Java's URLConnection) send a bare "*"
            media_type = "*/*"
        type_, slash, subtype = media_type.partition("/")
        if not slash or not _TOKEN.match(type_) or not _TOKEN.match(subtype) or (type_ == "*" != subtype):
            continue
        q: float | None = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":  # the weight; parameters after it are extensions
                value = value.strip()
                q = float(value) if _WEIGHT.match(value) else None
                break
        if q is not None:  # an element with a malformed weight says nothing
            ranges.append(MediaRange(type_, subtype, q, element.strip()))
    return tuple(ranges)


@functools.lru_cache(maxsize=CACHED_HEADERS)
def _cached_accept(header: str) -> Accept:
    return Accept(_parse_ranges(header))


# Errors asking the client to send the persisted document it named (or to stop naming them):
# 200 whatever the client accepts, as Apollo Server 5 answers them (gqlchannels.graphql.persisted).
RETRY_CODES = frozenset({"PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED"})


def _asks_for_the_document(error: dict[str, Any]) -> bool:
    extensions = error.get("extensions")
    return isinstance(extensions, dict) and extensions.get("code") in RETRY_CODES


def is_request_error(result: Any) -> bool:
    return (isinstance(result, dict) and result.get("data") is None and bool(result.get("errors"))
            and all(isinstance(error, dict) and "path" not in error for error in result["errors"])
            and not any(map(_asks_for_the_document, result["errors"])))


Headers = list[tuple[bytes, bytes]]


def as_graphql_response(status: int, result: Any, headers: Headers) -> tuple[int, Headers]:
    """A JSON answer's status and headers as application/graphql-response+json: 400 for a
    request error (whose `data`, None, is taken out of `result`), the content type replaced.
    The content length is left out, for the caller to give the body's."""
    if status == 200 and is_request_error(result):
        status = 400
        del result["data"]
    headers = [(name, value) for name, value in headers if name.lower() not in (b"content-type", b"content-length")]
    headers.append((b"content-type", GRAPHQL_RESPONSE_CONTENT_TYPE))
    return status, headers


class GraphQLResponseNegotiation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not Accept.of(accept_header(scope)).prefers_graphql_response_json():
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        passing_through = False

        async def rewriting_send(message: dict[str, Any]) -> None:
            nonlocal start, passing_through
            if message["type"] == "http.response.start":
                content_type = next((value for name, value in message.get("headers", [])
                                     if name.lower() == b"content-type"), b"")
                if not content_type.startswith(b"application/json"):
                    passing_through = True  # the IDE's HTML, plain-text errors: not ours to change
                    await send(message)
                    return
                start = message
                return
            if passing_through or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body") and sum(map(len, chunks)) <= MAX_REWRITTEN_BODY:
                return
            await self._finish(send, start, b"".join(chunks), more_body=bool(message.get("more_body")))
            passing_through = True

        await self.app(scope, receive, rewriting_send)

    async def _finish(self, send: Send, start: dict[str, Any], body: bytes, more_body: bool) -> None:
        result = None
        if not more_body and start["status"] == 200:
            try:
                result = json.loads(body)
            except ValueError:
                pass
        status, headers = as_graphql_response(start["status"], result, start.get("headers", []))
        if status != start["status"]:
            body = dumps_bytes(result)  # without its data, encoded as every other response
        if not more_body:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
