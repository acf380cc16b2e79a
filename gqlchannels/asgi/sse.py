"""Server-sent events, the graphql-sse protocol's "distinct connections" mode (opt-in: --sse).

One HTTP request per operation, answered with `event: next` per result and a final `event:
complete`: a subscription from a client that accepts `text/event-stream`, and a query or
mutation from one that prefers it to JSON (negotiation.py has the rule; urql, which lists both
for every operation, gets JSON for its queries). Strawberry's Channels HTTP
consumer also streams, but reads the client's disconnect only when the stream ends, so a
subscription whose client left runs (and stays in its groups) forever (docs/internals.md). Here the
operation runs in its own task while the request's `receive` is watched: a disconnect
cancels it at once, and its `finally` blocks (leaving groups) run.

With SSE off, a client that accepts only an event stream gets a 406 that says how to
subscribe instead; one that also accepts JSON gets JSON (a subscription: a request error that
says where subscriptions are served). `multipart/mixed` subscriptions leak the same way in
Strawberry, and Strawberry would also stream by itself for any Accept that names
`text/event-stream`, so both media types are taken out of the Accept header Strawberry sees:
what reaches it is answered as JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

from graphql import DocumentNode, GraphQLError
from strawberry.schema import BaseSchema
from strawberry.types.execution import PreExecutionError

from ..auth import AuthHook, AuthRequest, Unauthorized, authenticate, headers_of
from ..events.listen import Events
from ..graphql.context import SSERequest
from ..graphql.documents import operation_type
from ..graphql.persisted import PersistedOperations, PersistedQueryError, names_a_persisted_document
from ..json_encoding import JSONTooDeep, dumps, loads
from ..metrics import OPERATION_KEY
from .middleware import replaying
from .negotiation import EVENT_STREAM, MULTIPART_MIXED, Accept, accept_header
from .routing import ASGIApp, Receive, Scope, Send, send_json

KEEP_ALIVE_INTERVAL = 12.0  # seconds between comment lines that keep proxies from closing an idle stream
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events through as they come
]


NOT_ENABLED = json.dumps({"errors": [{"message": (
    "server-sent events (Accept: text/event-stream) are not enabled on this server; send queries "
    "and mutations with Accept: application/json, subscribe over WebSocket (graphql-transport-ws), "
    "or start the server with --sse")}]}).encode()


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
    """ASGI middleware for the GraphQL HTTP route: answers with event streams where the
    negotiation says so, passes the rest to Strawberry."""

    def __init__(self, app: ASGIApp, schema: BaseSchema, *, enabled: bool,
                 layer: Callable[[], Any], parse_document: Callable[[str], DocumentNode],
                 auth_hook: AuthHook | None = None, persisted: PersistedOperations | None = None) -> None:
        self.app = app
        self.persisted = persisted
        self.schema = schema
        self.enabled = enabled
        self.layer = layer
        self.parse_document = parse_document
        self.auth_hook = auth_hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = Accept.of(accept_header(scope))
        stream_quality, json_quality = accept.quality(EVENT_STREAM), accept.json_quality()
        if stream_quality == 0 or (json_quality > 0 and not self.enabled):
            await self.answer_json(accept, scope, receive, send)
        elif not self.enabled:  # only an event stream would do
            await send_json(send, 406, NOT_ENABLED)
        elif stream_quality > json_quality:
            await self.serve(scope, receive, send, await _read_params(scope, receive))
        else:
            # JSON and event streams weigh alike (urql, a browser's */*): a subscription streams,
            # anything else is JSON, so the operation decides. A request that names none is
            # answered by Strawberry, whose errors (or IDE page) are the JSON path's.
            body = await _read_body(scope, receive)
            params = _parse_params(scope, body)
            replay = replaying(body, receive)
            if isinstance(params, dict) and self._operation_of(params) == "subscription":
                await self.serve(scope, replay, send, params)
            else:
                await self.answer_json(accept, scope, replay, send)

    def _operation_of(self, params: dict[str, Any]) -> str | None:
        query = params.get("query")
        if self.persisted is not None:  # the persisted document it names, if any (counted when it is run)
            query = self.persisted.peek(params)
        if not isinstance(query, str):
            return None
        try:
            document = self.parse_document(query)
        except GraphQLError:
            return None
        return operation_type(document, params.get("operationName"))

    async def answer_json(self, accept: Accept, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's answer, with the streaming media types out of the Accept it sees (it
        would stream for any mention of them, refused with q=0 or malformed ones included)."""
        raw = accept_header(scope).lower()
        if b"text/event-stream" not in raw and b"multipart/mixed" not in raw:
            await self.app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"accept"]
        headers.append((b"accept", accept.without(EVENT_STREAM, MULTIPART_MIXED)))
        inner = {**scope, "headers": headers}
        try:
            await self.app(inner, receive, send)
        finally:
            if OPERATION_KEY in inner:  # the operation's type, for the metrics middleware outside
                scope[OPERATION_KEY] = inner[OPERATION_KEY]

    async def serve(self, scope: Scope, receive: Receive, send: Send, params: dict[str, Any] | str) -> None:
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
        query = params.get("query")
        if self.persisted is not None:
            try:
                query = self.persisted.resolve(params)
            except PersistedQueryError as error:
                await send_persisted_error(send, error)
                return
        if not isinstance(query, str):
            await send_json(send, 400, json.dumps({"errors": [{"message": "a GraphQL request needs a 'query' string"}]}).encode())
            return
        results = await self.schema.stream(
            query, variable_values=params.get("variables"), context_value=context,
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


async def send_persisted_error(send: Send, error: PersistedQueryError) -> None:
    body = error.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in error.headers] or [(b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_params(scope: Scope, receive: Receive) -> dict[str, Any] | str:
    """The GraphQL request parameters, or why they are unusable."""
    return _parse_params(scope, await _read_body(scope, receive))


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    if scope.get("method") != "POST":
        return b""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _parse_params(scope: Scope, body: bytes) -> dict[str, Any] | str:
    if scope.get("method") == "GET":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        params: Any = {key: values[0] for key, values in query.items()}
        for key in ("variables", "extensions"):
            if key in params:
                try:
                    params[key] = loads(params[key])
                except JSONTooDeep:
                    return f"'{key}' is nested too deeply"
                except ValueError:
                    return f"'{key}' is not valid JSON"
    elif scope.get("method") == "POST":
        try:
            params = loads(body)
        except JSONTooDeep:
            return "the request body is nested too deeply"
        except ValueError:
            return "the request body is not valid JSON"
    else:
        return f"method {scope.get('method')} is not allowed; use GET or POST"
    if not isinstance(params, dict):
        return "a GraphQL request needs a 'query' string"
    if not isinstance(params.get("query"), str) and not (params.get("query") is None and names_a_persisted_document(params)):
        return "a GraphQL request needs a 'query' string"
    for key, kind in (("variables", dict), ("extensions", dict), ("operationName", str)):
        if params.get(key) is not None and not isinstance(params[key], kind):
            return f"'{key}' has the wrong type"
    return params
