"""The GraphQL HTTP route as one ASGI handler: what a query or mutation needs, and nothing else.

The full route is a stack: metrics, content negotiation, the body limit and SSE routing
around Channels' HTTP consumer and Strawberry's view, which runs the operation through
`Schema.execute` and its extension hooks. Each layer wraps `send` or `receive`, and the
consumer and view build their own request, response and adapter objects: most of a small
request's time. This handler does the same work in one pass for the requests that make up
nearly all traffic, a POST with a JSON object or a GET with `?query=`, whose document the
server parses and validates (its cache) without errors, naming one query or mutation (a
mutation over POST), from a client that takes a JSON answer: it reads the body (with the
limit), authenticates, builds the context resolvers get (`request`, `response`, `events`,
`user`, as the consumer does), executes through graphql-core
(gqlchannels.overrides.strawberry_http_execution), passes errors through the schema's
processing (logging, masking), negotiates `application/graphql-response+json` and counts
the request in the metrics.

Everything else goes to the full route, which answers it as before: other methods, other
content types, malformed JSON, batches, GraphiQL, a document that does not parse or
validate, a subscription, a mutation over GET, an unknown operation name, event streams.
The body already read is replayed to it, and a login already checked is not asked for
again (the hook is called once per request either way).

The handler serves only where it gives the answer the full route would, byte for byte
(tests/asgi/test_lean_http.py compares the two on generated requests): never for a schema
with extensions of the user's own (their hooks run only in Strawberry's execution), nor
one that the override refuses (a schema class of its own, directives), nor with fast paths
off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import markcoroutinefunction
from graphql import ExecutionResult, GraphQLError, specified_rules
from strawberry.http.temporal_response import TemporalResponse
from strawberry.schema import BaseSchema
from strawberry.types.graphql import OperationType

from ..auth import AuthHook, AuthRequest, Unauthorized, authenticate, headers_of
from ..events.listen import Events
from ..events.publish import register_server_layer, server_layer_registered
from ..graphql.consumers import Latin1HeadersRequest
from ..graphql.context import AUTHENTICATED_KEY, PREPARED_KEY
from ..graphql.documents import DOCUMENTS, PreparedDocument, operation_type
from ..graphql.extension import ServerPolicy, with_rules
from ..graphql.persisted import PersistedOperations
from ..json_encoding import dumps_bytes, loads
from ..metrics import GRAPHQL_ERRORS, OPERATION_KEY, http_request_done
from ..overrides import strawberry_http_execution
from ..overrides.strawberry_schema import graphql_schema
from .middleware import BodyRefused, answer_body_refusal, answer_cut_request, read_body, replaying
from .negotiation import (
    EVENT_STREAM,
    MULTIPART_MIXED,
    Accept,
    GraphQLResponseNegotiation,
    accept_header,
    as_graphql_response,
)
from .routing import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("gqlchannels")

_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION})
_GET_OPERATIONS = frozenset({OperationType.QUERY, OperationType.SUBSCRIPTION})
_OPERATION_TYPES = {"query": OperationType.QUERY, "mutation": OperationType.MUTATION}


class HTTPRequestConsumer:
    """What `info.context["request"].consumer` is for a request this handler serves, in place
    of Channels' consumer: the request's `scope` (with `scope["user"]` from Django's
    AuthMiddlewareStack when mounted) and the app's `channel_layer`."""

    __slots__ = ("scope", "channel_layer")

    def __init__(self, scope: Scope, channel_layer: Any) -> None:
        self.scope = scope
        self.channel_layer = channel_layer


class _Fallback(Exception):  # noqa: N818 - not a failure: the full route answers
    """This request is the full route's to answer."""


def lean_refusal(schema: BaseSchema, user_schema: BaseSchema) -> str | None:
    """Why the lean handler does not serve `schema` (the served copy of `user_schema`); None
    when it does."""
    if user_schema.extensions:
        return "the schema has extensions of its own"  # their hooks run in Strawberry's execution
    if graphql_schema(schema) is None:
        return "the server's own validation is not in use"
    return strawberry_http_execution.refusal(schema)


class GraphQLHTTP:
    """The GraphQL HTTP route (ASGI): queries and mutations answered here, the rest by `full`."""

    def __init__(self, full: ASGIApp, schema: BaseSchema, policy: ServerPolicy, *, max_body_size: int,
                 body_timeout: float, sse: bool, auth_hook: AuthHook | None, layer: Callable[[], Any],
                 stopping: Callable[[], bool], persisted: PersistedOperations | None = None) -> None:
        """`full`: the route's middleware (negotiation, SSE) and consumer, without the body limit
        and metrics, which this handler applies to every request; `layer`: the app's channel
        layer; `stopping`: whether the server is shutting down (requests cut then get 503);
        `persisted`: the server's persisted operations (requests that name one, and every
        request under --only-persisted, are the full route's)."""
        self.full = full
        self.persisted = persisted
        self.schema = schema
        self.policy = policy
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.sse = sse
        self.auth_hook = auth_hook
        self.layer = layer
        self.stopping = stopping
        gschema = graphql_schema(schema)
        assert gschema is not None
        # The validation the extension does, under the same cache key (the rules Strawberry
        # starts an operation with, plus the server's), so either path finds the other's work.
        rules = with_rules(tuple(specified_rules), policy.validation_rules)
        self.validation_key = policy.validation_key(gschema, rules)
        self.validator = policy.validator(gschema, rules)
        # The 413 and the 408, as the full route negotiates them.
        self._refusals = {refused: GraphQLResponseNegotiation(self._refusing(refused))
                          for refused in (BodyRefused.TOO_LARGE, BodyRefused.TOO_SLOW)}

    def _refusing(self, refused: BodyRefused) -> ASGIApp:
        async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
            await answer_body_refusal(send, refused, self.max_body_size, self.body_timeout)
        return refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = {"status": 500, "started": False}  # uvicorn answers 500 if nothing was sent

        async def tracking_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
            await send(message)

        try:
            await self.handle(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # --shutdown-timeout ran out (AnswerCutRequests, for this route).
            if not self.stopping():
                raise
            if not state["started"]:
                state["status"] = 503
            await answer_cut_request(send, state["started"])
        finally:
            http_request_done(state["status"], scope.get(OPERATION_KEY, "none"), time.perf_counter() - started)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._read_body(scope, receive, send)
        if body is None:
            return  # refused (413) or the client left
        if not self._names_persisted_documents(scope, body):
            try:
                await self.answer(scope, body, send)
                return
            except _Fallback:
                pass
        # Outside the handler, so that what the full route logs is not chained to _Fallback.
        await self.full(scope, replaying(body, receive), send)

    def _names_persisted_documents(self, scope: Scope, body: bytes) -> bool:
        """Whether the full route must resolve a persisted document for this request (or check
        its document against the manifest, under --only-persisted)."""
        return self.persisted is not None and self.persisted.wants(
            body if scope["method"] == "POST" else scope.get("query_string", b""))

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after a 413 or 408 (the body limits') or the client's disconnect."""
        body = await read_body(scope, receive, self.max_body_size, self.body_timeout)
        if isinstance(body, BodyRefused):
            refusal = self._refusals.get(body)
            if refusal is not None:
                await refusal(scope, receive, send)
            return None
        return body

    async def answer(self, scope: Scope, body: bytes, send: Send) -> None:
        """Answer a query or mutation; _Fallback for any request the full route must answer."""
        method = scope["method"]
        raw_accept = accept_header(scope)
        accept = Accept.of(raw_accept)
        json_quality = accept.json_quality()
        if json_quality == 0 or (self.sse and accept.quality(EVENT_STREAM) > json_quality):
            raise _Fallback  # an event stream, or a 406
        if method == "POST":
            content_type = ""
            for name, value in scope["headers"]:
                if name.lower() == b"content-type":  # the last one, as Strawberry reads them
                    content_type = value.decode("latin-1")
            if content_type.partition(";")[0].strip() != "application/json":
                raise _Fallback  # Strawberry's test is case-sensitive: "Application/JSON" is a 400
            try:
                params = loads(body)
            except ValueError:  # malformed, nested too deeply, not UTF-8
                raise _Fallback from None
            if not isinstance(params, dict):
                raise _Fallback
            operation_name = params.get("operationName")
            allowed = _POST_OPERATIONS
        elif method == "GET":
            params = _query_params(scope)
            operation_name = params.get("operationName")
            allowed = _GET_OPERATIONS
        else:
            raise _Fallback
        query = params.get("query")
        variables = params.get("variables")
        extensions = params.get("extensions")
        if not isinstance(query, str) or not query or not isinstance(variables, (dict, type(None))) \
                or not isinstance(extensions, (dict, type(None))) \
                or not isinstance(operation_name, (str, type(None))):
            raise _Fallback

        # Strawberry's view sees the Accept header without the streaming types (sse.py).
        lowered = raw_accept.lower()
        if b"text/event-stream" in lowered or b"multipart/mixed" in lowered:
            headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"accept"]
            headers.append((b"accept", accept.without(EVENT_STREAM, MULTIPART_MIXED)))
            request_scope = {**scope, "headers": headers}
        else:
            request_scope = scope

        user = None
        if self.auth_hook is not None:
            try:
                user = await authenticate(self.auth_hook, AuthRequest("http", headers_of(scope)))
            except Unauthorized as exc:
                await self._send_json(send, accept, 401, {"errors": [{"message": str(exc) or "unauthorized"}]},
                                      {b"Content-Type": b"application/json"})
                return
            scope[AUTHENTICATED_KEY] = user

        prepared = await DOCUMENTS.prepare(query, self.policy.max_tokens, self.validation_key, self.validator)
        scope[PREPARED_KEY] = prepared
        operation = _operation_type(prepared, operation_name)
        if operation is None or operation not in allowed or prepared.validations.get(self.validation_key):
            raise _Fallback  # the full route's errors: parse, validation, operation, method
        document = prepared.document
        assert document is not None
        del scope[PREPARED_KEY]

        layer = self.layer()
        if layer is not None and not server_layer_registered():
            # Mounted without our lifespan: the first request tells gqlchannels.publish()
            # which layer and loop this server runs (as the consumer does).
            register_server_layer(layer, asyncio.get_running_loop())
        response = TemporalResponse()
        context: dict[str, Any] = {
            "request": Latin1HeadersRequest(consumer=HTTPRequestConsumer(request_scope, layer), body=body),
            "response": response,
            "events": Events(layer),
        }
        if self.auth_hook is not None:
            context["user"] = user

        try:
            result = strawberry_http_execution.execute(self.schema, document, variables, context, operation_name,
                                                       extensions)
            if not hasattr(result, "errors"):
                result = await result
            errors = result.errors
        except Exception as exc:  # as Strawberry: the operation's error, not the request's
            result = None
            errors = [exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)]
        operation_value = operation.value
        scope[OPERATION_KEY] = request_scope[OPERATION_KEY] = operation_value
        answer: dict[str, Any] = {"data": None if result is None else result.data}
        if errors:
            processed = result if result is not None else ExecutionResult(None, errors)
            strawberry_http_execution.process_errors(
                self.schema, processed, query=query, document=document, allowed_operations=allowed,
                context=context, variables=variables, operation_name=operation_name,
                operation_extensions=extensions)
            GRAPHQL_ERRORS.labels(operation_value).inc()
            answer["errors"] = [error.formatted for error in errors]
        headers = {name.encode(): value.encode() for name, value in response.headers.items()}
        if b"Content-Type" not in headers:
            headers[b"Content-Type"] = b"application/json"
        await self._send_json(send, accept, response.status_code, answer, headers)

    async def _send_json(self, send: Send, accept: Accept, status: int, answer: dict[str, Any],
                         headers: dict[bytes, bytes]) -> None:
        """The consumer's response as GraphQLResponseNegotiation leaves it."""
        header_list = list(headers.items())
        content_type = next((value for name, value in header_list if name.lower() == b"content-type"), b"")
        if accept.prefers_graphql_response_json() and content_type.startswith(b"application/json"):
            status, header_list = as_graphql_response(status, answer, header_list)
        body = dumps_bytes(answer)
        if not any(name.lower() == b"content-length" for name, _ in header_list):
            header_list.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": header_list})
        await send({"type": "http.response.body", "body": body})


class GraphQLRouteFirst:
    """HTTP routing with the GraphQL path looked at first (the lean handler answers requests
    cut by the shutdown itself), then `rest` (the other routes, behind AnswerCutRequests)."""

    _asgi_single_callable = True

    def __init__(self, path: str, graphql: ASGIApp, rest: ASGIApp) -> None:
        self.path = path.rstrip("/") or "/"
        self.graphql = graphql
        self.rest = rest

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if (scope.get("path", "").rstrip("/") or "/") == self.path:
            return self.graphql(scope, receive, send)
        return self.rest(scope, receive, send)


def _operation_type(prepared: PreparedDocument, operation_name: str | None) -> OperationType | None:
    """The query or mutation the request runs; None for anything else (a subscription, no
    such operation, several and no name): the full route says what is wrong."""
    if prepared.document is None:
        return None
    found = operation_type(prepared.document, operation_name)
    return None if found is None else _OPERATION_TYPES.get(found)


def _query_params(scope: Scope) -> dict[str, Any]:
    """A GET request's parameters as Strawberry's view reads them; _Fallback where it would
    refuse them (or fail)."""
    try:
        text = scope.get("query_string", b"").decode()
    except UnicodeDecodeError:
        raise _Fallback from None
    params: dict[str, Any] = {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
    for key in ("variables", "extensions"):
        value = params.get(key)
        if value:
            try:
                params[key] = loads(value)
            except ValueError:
                raise _Fallback from None
        elif value is not None:
            raise _Fallback  # blank: Strawberry refuses it
    return params

