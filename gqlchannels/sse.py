"""Server-sent events, the graphql-sse protocol's "distinct connections" mode (opt-in: --sse).

One HTTP request per operation: POST (or GET) with `Accept: text/event-stream`, answered
with `event: next` per result and a final `event: complete`. Strawberry's Channels HTTP
consumer also streams, but reads the client's disconnect only when the stream ends, so a
subscription whose client left runs (and stays in its groups) forever (DESIGN.md). Here the
operation runs in its own task while the request's `receive` is watched: a disconnect
cancels it at once, and its `finally` blocks (leaving groups) run.

With SSE off, such requests get a 406 that says how to subscribe instead. `multipart/mixed`
subscriptions leak the same way in Strawberry, so that media type is taken out of the Accept
header Strawberry sees: queries from clients that offer it (GraphiQL does) are answered as
JSON, and a subscription over HTTP without SSE is refused by Strawberry with a 4xx.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

from graphql import GraphQLError
from strawberry.schema import BaseSchema
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from .auth import AuthHook, AuthRequest, Unauthorized, authenticate, headers_of
from .events import Events
from .json_encoding import dumps
from .routing import ASGIApp, Receive, Scope, Send, send_json

KEEP_ALIVE_INTERVAL = 12.0  # seconds between comment lines that keep proxies from closing an idle stream
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events through as they come
]


@dataclasses.dataclass
class SSERequest:
    """What resolvers find at info.context["request"] over SSE."""

    scope: Scope
    headers: dict[str, str]


def refuse_subscription_over_plain_http(execution_context: Any) -> None:
    """A subscription in a plain HTTP request (one JSON answer) is a request error that says
    where subscriptions are served; Strawberry would run its resolver as if it were a query."""
    context = execution_context.context
    plain_http = isinstance(context, dict) and "ws" not in context \
        and not isinstance(context.get("request"), SSERequest)
    if plain_http and execution_context.operation_type == OperationType.SUBSCRIPTION:
        raise GraphQLError(
            "subscriptions are served over WebSocket (graphql-transport-ws or graphql-ws) "
            "and, when the server runs with --sse, over server-sent events (Accept: text/event-stream)"
        )


def wants_event_stream(scope: Scope) -> bool:
    accept = dict(scope.get("headers", [])).get(b"accept", b"").lower()
    return b"text/event-stream" in accept


def wants_multipart(scope: Scope) -> bool:
    accept = dict(scope.get("headers", [])).get(b"accept", b"").lower()
    return b"multipart/mixed" in accept


def _without_multipart(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    if name.lower() != b"accept":
        return name, value
    kept = [part for part in value.split(b",") if b"multipart/mixed" not in part.lower()]
    return name, b",".join(kept) or b"application/json"


def _event(kind: str, data: Any = None) -> bytes:
    payload = "" if data is None else dumps(data)
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def _formatted(result: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if getattr(result, "extensions", None):
        body["extensions"] = result.extensions
    return body


class SSETransport:
    """ASGI middleware for the GraphQL HTTP route: takes event-stream requests, passes the rest."""

    def __init__(self, app: ASGIApp, schema: BaseSchema, *, enabled: bool,
                 layer: Callable[[], Any], auth_hook: AuthHook | None = None) -> None:
        self.app = app
        self.schema = schema
        self.enabled = enabled
        self.layer = layer
        self.auth_hook = auth_hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if wants_event_stream(scope):
            if self.enabled:
                await self.serve(scope, receive, send)
            else:
                await send_json(send, 406, json.dumps({"errors": [{"message": (
                    "subscriptions over server-sent events are not enabled on this server; subscribe "
                    "over WebSocket (graphql-transport-ws), or start the server with --sse")}]}).encode())
            return
        if wants_multipart(scope):
            scope = {**scope, "headers": [_without_multipart(name, value) for name, value in scope["headers"]]}
        await self.app(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = await _read_params(scope, receive)
        if isinstance(params, str):
            await send_json(send, 400, json.dumps({"errors": [{"message": params}]}).encode())
            return
        headers = headers_of(scope)
        context: dict[str, Any] = {"request": SSERequest(scope, headers), "response": None,
                                   "events": Events(self.layer())}
        if self.auth_hook is not None:
            try:
                context["user"] = await authenticate(self.auth_hook, AuthRequest("http", headers))
            except Unauthorized as exc:
                await send_json(send, 401, json.dumps({"errors": [{"message": str(exc)}]}).encode())
                return
        results = await self.schema.stream(
            params["query"], variable_values=params.get("variables"), context_value=context,
            operation_name=params.get("operationName"), operation_extensions=params.get("extensions"),
        )
        await self.stream(results, receive, send)

    async def stream(self, results: AsyncIterator[Any], receive: Receive, send: Send) -> None:
        started = False

        async def produce() -> None:
            nonlocal started
            async for result in results:
                if not started and isinstance(result, PreExecutionError):
                    # Nothing ran: a request error, answered as one (graphql-sse does the same).
                    await send_json(send, 400, json.dumps(_formatted(result)).encode())
                    return
                if not started:
                    started = True
                    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
                await send({"type": "http.response.body", "body": _event("next", _formatted(result)),
                            "more_body": True})
            await send({"type": "http.response.body", "body": _event("complete"), "more_body": False})

        async def keep_alive() -> None:
            while True:
                await asyncio.sleep(KEEP_ALIVE_INTERVAL)
                if started:
                    await send({"type": "http.response.body", "body": b":\n\n", "more_body": True})

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        producer = asyncio.ensure_future(produce())
        watchers = [asyncio.ensure_future(watch_disconnect()), asyncio.ensure_future(keep_alive())]
        try:
            await asyncio.wait([producer, watchers[0]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The client went (or the stream ended): stop the operation now, so its
            # generator's cleanup (leaving groups) runs while we wait for it.
            for task in (producer, *watchers):
                task.cancel()
            await asyncio.gather(producer, *watchers, return_exceptions=True)
            close = getattr(results, "aclose", None)
            if close is not None:
                await close()
        if producer.done() and not producer.cancelled() and producer.exception() is not None:
            raise producer.exception()  # type: ignore[misc]


async def _read_params(scope: Scope, receive: Receive) -> dict[str, Any] | str:
    """The GraphQL request parameters, or why they are unusable."""
    if scope.get("method") == "GET":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        params: Any = {key: values[0] for key, values in query.items()}
        for key in ("variables", "extensions"):
            if key in params:
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    return f"'{key}' is not valid JSON"
    elif scope.get("method") == "POST":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            params = json.loads(body)
        except ValueError:
            return "the request body is not valid JSON"
    else:
        return f"method {scope.get('method')} is not allowed; use GET or POST"
    if not isinstance(params, dict) or not isinstance(params.get("query"), str):
        return "a GraphQL request needs a 'query' string"
    for key, kind in (("variables", dict), ("extensions", dict), ("operationName", str)):
        if params.get(key) is not None and not isinstance(params[key], kind):
            return f"'{key}' has the wrong type"
    return params
