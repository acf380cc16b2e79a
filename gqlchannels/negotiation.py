"""GraphQL over HTTP's `application/graphql-response+json`, for clients that ask for it.

With that media type the spec (graphql-over-http) lets a client tell a request error from an
execution result by the status: a document that does not parse or validate, or variables
that do not coerce, answer 400 with no `data` entry. Strawberry answers every GraphQL result
as `application/json` with 200 and `"data": null`, which stays exactly so for clients that
accept only `application/json`; for clients preferring the new type this middleware rewrites
the response. A request error is recognisable from the body alone: `data` is null and no
error has a `path` (every field error has one).
"""

from __future__ import annotations

import json
from typing import Any

from .json_encoding import dumps_bytes
from .routing import ASGIApp, Receive, Scope, Send

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
MAX_REWRITTEN_BODY = 4 * 1024 * 1024  # bigger results are streamed through untouched


def _quality(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type` (wildcards count less than the exact type)."""
    best = 0.0
    for part in accept.split(","):
        fields = [field.strip() for field in part.split(";")]
        kind = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if kind == media_type:
            return q
        if kind in ("*/*", media_type.split("/")[0] + "/*"):
            best = max(best, q * 0.99)  # a wildcard never outranks an explicit choice
    return best


def prefers_graphql_response_json(accept: str) -> bool:
    wanted = _quality(accept, GRAPHQL_RESPONSE_JSON)
    return wanted > 0 and GRAPHQL_RESPONSE_JSON in accept.lower() and wanted >= _quality(accept, "application/json")


def is_request_error(result: Any) -> bool:
    return (isinstance(result, dict) and result.get("data") is None and bool(result.get("errors"))
            and all(isinstance(error, dict) and "path" not in error for error in result["errors"]))


class GraphQLResponseNegotiation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")
        if not prefers_graphql_response_json(accept):
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
        status = start["status"]
        if not more_body and status == 200:
            try:
                result = json.loads(body)
            except ValueError:
                result = None
            if is_request_error(result):
                status = 400
                del result["data"]
                body = dumps_bytes(result)  # encoded as every other response
        headers = [(name, value) for name, value in start.get("headers", [])
                   if name.lower() not in (b"content-type", b"content-length")]
        headers.append((b"content-type", GRAPHQL_RESPONSE_JSON.encode() + b"; charset=utf-8"))
        if not more_body:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
