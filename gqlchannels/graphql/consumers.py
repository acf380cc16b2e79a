"""Strawberry's Channels consumers as gqlchannels serves them.

Both transports put `events` (gqlchannels.events.Events) into the context, and, with an auth
hook, `user` (refusing with 401 over HTTP, 4403 over WebSocket).

Over HTTP, a request Strawberry refuses before GraphQL (a body that is not JSON, a wrong
method, a refused login) is answered with its status and a GraphQL-style JSON body,
`{"errors": [{"message": ...}]}`, where Strawberry writes its reason as plain text. Header
bytes are read as ISO-8859-1, HTTP's rule, as the auth hook, Strawberry's WebSocket view
and uvicorn do; Strawberry's HTTP request reads them as UTF-8 and fails (a 500) on a
header such as `User-Agent: caf\xe9`.

`consumer_classes()` adds, when Django has no database and the fast path is on, the direct
dispatch of gqlchannels.overrides.channels_consumers (no database hop per message, a leaner
WebSocket consumer).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from cross_web import HTTPException
from strawberry.channels import GraphQLHTTPConsumer, GraphQLWSConsumer
from strawberry.channels.handlers.http_handler import ChannelsRequest, ChannelsResponse, MultipartChannelsResponse
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET

from ..asgi.routing import not_found_body
from ..auth import AuthHook, AuthRequest, Unauthorized, authenticate, headers_of
from ..events.listen import Events
from ..events.publish import register_server_layer, server_layer_registered
from ..json_encoding import JSONTooDeep, dumps, dumps_bytes, loads
from ..overrides import channels_consumers
from .context import AUTHENTICATED_KEY
from .persisted import PersistedOperations, PersistedQueryError
from .protocols import INVALID_MESSAGE, handler_classes

logger = logging.getLogger("gqlchannels")


def _not_strawberrys_origin_warning(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Rejected WebSocket connection from origin")


logging.getLogger("strawberry.ws").addFilter(_not_strawberrys_origin_warning)


class _EventsContextMixin:
    """Adds `events` (listen and publish) to Strawberry's context dict, over both transports."""

    channel_layer: Any

    def __init__(self, *args: Any, channel_layer_alias: str = DEFAULT_CHANNEL_LAYER, **kwargs: Any) -> None:
        """`channel_layer_alias`: the layer this consumer and its `events` use, as Channels
        names it (build_application gives an app with a layer instance of its own an alias)."""
        super().__init__(*args, **kwargs)
        self.channel_layer_alias = channel_layer_alias

    async def get_context(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = await super().get_context(*args, **kwargs)  # type: ignore[misc]
        if self.channel_layer is not None and not server_layer_registered():
            # Mounted in a user's router without our lifespan: the first request tells
            # gqlchannels.publish() which layer and loop this server runs.
            register_server_layer(self.channel_layer, asyncio.get_running_loop())
        context["events"] = Events(self.channel_layer)
        return context


class Latin1HeadersRequest(ChannelsRequest):
    """Strawberry's request (info.context["request"] over HTTP), its headers read as ISO-8859-1."""

    @property
    def headers(self) -> dict[str, str]:
        # As Strawberry's: lower-case names, the last of a repeated header wins.
        return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.consumer.scope["headers"]}


class ParsedBody(bytes):
    """A request body already parsed (to find the persisted document it names), with the
    document's text put in: decode_json returns `parsed` instead of parsing it again."""

    parsed: Any


class ResolvedQueryRequest(Latin1HeadersRequest):
    """A GET request whose query parameters name a persisted document: Strawberry reads them
    with the document's text as `query` (so a browser's GET of one gets it run, not GraphiQL)."""

    def __init__(self, consumer: Any, body: bytes, query_params: dict[str, str]) -> None:
        super().__init__(consumer=consumer, body=body)
        self.resolved_query_params = query_params

    @property
    def query_params(self) -> dict[str, str]:  # type: ignore[override]
        return self.resolved_query_params


class HTTPConsumer(_EventsContextMixin, GraphQLHTTPConsumer):
    def __init__(self, *args: Any, auth_hook: AuthHook | None = None, ide_html: str | None = None,
                 persisted: PersistedOperations | None = None, **kwargs: Any) -> None:
        """`ide_html`: the GraphiQL page served from the package (gqlchannels.asgi.ide), not
        Strawberry's, which loads from a CDN; None when GraphiQL is off. Strawberry asks for
        the page whenever its `graphql_ide` is set, so keep that set: with it unset a browser
        would get Strawberry's plain-text 404. `persisted`: what the server does with
        persisted operations (APQ, the manifest), None for nothing."""
        super().__init__(*args, **kwargs)
        self.auth_hook = auth_hook
        self.ide_html = ide_html
        self.persisted = persisted
        self.user: Any = None

    async def render_graphql_ide(self, request: ChannelsRequest) -> ChannelsResponse:
        if self.ide_html is None:
            # GraphiQL is off: the JSON 404 every other path gets, saying what works here.
            hint = (f"GraphiQL is turned off on this server; send GraphQL requests to {self.scope['path']} "
                    "as a POST with a JSON body, or a GET with ?query=...")
            return ChannelsResponse(content=not_found_body(self.scope["path"], hint), status=404,
                                    headers={b"cache-control": b"no-store"})
        return ChannelsResponse(content=self.ide_html.encode(), content_type="text/html; charset=utf-8")

    def encode_json(self, data: object) -> bytes:
        return dumps_bytes(data)

    def decode_json(self, data: str | bytes) -> object:
        if isinstance(data, ParsedBody):
            return data.parsed
        # Strawberry turns JSONDecodeError into a 400 but lets a body that is not UTF-8
        # (UnicodeDecodeError) through as a 500; found by tests/hostile/test_fuzz.py.
        try:
            return loads(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON: it is not UTF-8") from None
        except JSONTooDeep:
            raise HTTPException(400, "Unable to parse the JSON in the request: it is nested too deeply") from None

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if isinstance(data, bytes):  # the request body (query parameters arrive as str)
            # Strawberry reads the body with .get() (a 500 for anything but an object or a
            # batch list), and passes a non-string operationName on: a 500 once it is nested
            # deep enough to break the "Unknown operation" message.
            if not isinstance(parsed, (dict, list)):
                raise HTTPException(400, "A GraphQL request must be a JSON object")
            if isinstance(parsed, dict) and not isinstance(parsed.get("operationName"), (str, type(None))):
                raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
        return parsed

    async def run(self, request: ChannelsRequest, context: Any = UNSET,
                  root_value: Any = UNSET) -> ChannelsResponse | MultipartChannelsResponse:
        try:
            # The login first, then the persisted document (a client the hook refuses learns
            # nothing of the APQ store, nor adds to it), then Strawberry.
            if self.auth_hook is not None and AUTHENTICATED_KEY in self.scope:
                self.user = self.scope[AUTHENTICATED_KEY]  # the lean handler asked the hook already
            elif self.auth_hook is not None:
                try:
                    self.user = await authenticate(self.auth_hook, AuthRequest("http", headers_of(self.scope)))
                except Unauthorized as exc:
                    raise HTTPException(401, str(exc) or "unauthorized") from None
            return await super().run(self.with_persisted_document(request), context, root_value)
        except HTTPException as exc:
            return ChannelsResponse(content=dumps_bytes({"errors": [{"message": exc.reason}]}),
                                    status=exc.status_code)
        except PersistedQueryError as exc:
            return ChannelsResponse(content=exc.body(), status=exc.status,
                                    headers={name.encode(): value.encode() for name, value in exc.headers})

    def with_persisted_document(self, request: ChannelsRequest) -> Latin1HeadersRequest:
        """The request as Strawberry should read it: with the text of the persisted document
        it names as its `query` (PersistedQueryError if there is none to run). A request
        that names none (no persistedQuery, documentId or doc_id in it) is passed on unread,
        unless --only-persisted; one that cannot be read is passed on for Strawberry to refuse."""
        plain = Latin1HeadersRequest(consumer=request.consumer, body=request.body)
        persisted, method = self.persisted, self.scope.get("method")
        if persisted is None:
            return plain
        if method == "GET" and persisted.wants(self.scope.get("query_string", b"")):
            try:
                query_params = dict(request.query_params)
                params: dict[str, Any] = dict(query_params)
                if params.get("extensions"):
                    params["extensions"] = loads(params["extensions"])
            except (ValueError, JSONTooDeep):  # not UTF-8, not JSON: Strawberry's 400
                return plain
            document = persisted.resolve(params)
            if document is not params.get("query") and isinstance(document, str):
                return ResolvedQueryRequest(request.consumer, request.body, {**query_params, "query": document})
        elif method == "POST" and persisted.wants(request.body):
            try:
                parsed = loads(request.body)
            except (ValueError, JSONTooDeep):
                return plain
            if isinstance(parsed, dict):
                parsed = self._with_document(persisted, parsed)
            elif isinstance(parsed, list):  # a batch (refused unless batching is on): each operation
                parsed = [self._with_document(persisted, item) if isinstance(item, dict) else item for item in parsed]
            body = ParsedBody(request.body)
            body.parsed = parsed
            return Latin1HeadersRequest(consumer=request.consumer, body=body)
        return plain

    @staticmethod
    def _with_document(persisted: PersistedOperations, params: dict[str, Any]) -> dict[str, Any]:
        document = persisted.resolve(params)
        return params if document is params.get("query") else {**params, "query": document}

    async def get_context(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = await super().get_context(*args, **kwargs)
        if self.auth_hook is not None:
            context["user"] = self.user  # authenticated in run()
        return context


class WSConsumer(_EventsContextMixin, GraphQLWSConsumer):
    @channels_consumers.encodes_as_orjson  # json_encoding.dumps: orjson's text, json's for what orjson refuses
    def encode_json(self, data: object) -> str:  # a text frame: str
        return dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        try:
            return loads(data)
        except JSONTooDeep:
            if self.websocket_adapter_class is channels_consumers.DirectWebSocketAdapter:
                # Malformed in both protocols, even in the legacy one, which skips text it
                # cannot parse: the same close as for any other malformed message. Strawberry's
                # own adapter knows only JSONDecodeError: there, the JSON path's answer.
                raise channels_consumers.CloseConnection(INVALID_MESSAGE, "Invalid message: JSON nested too deeply") from None
            raise

    def __init__(self, *args: Any, auth_hook: AuthHook | None = None,
                 persisted: PersistedOperations | None = None, **kwargs: Any) -> None:
        """`persisted`: what the protocol handlers do with persisted operations (they find it
        as their view's `persisted`), None for nothing."""
        super().__init__(*args, **kwargs)
        self.auth_hook = auth_hook
        self.persisted = persisted

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        if super().is_websocket_origin_allowed(request, origin):
            return True
        # Strawberry's own warning tells the operator to add the origin to `allowed_origins`,
        # a name they never see (filtered out below); ours names the setting they have.
        logger.warning(
            "refused a WebSocket connection from origin %r to host %r; if pages on that origin "
            "should connect, add it to --allowed-origins (GQLCHANNELS_ALLOWED_ORIGINS, or "
            "allowed_origins= of build_application)",
            origin, headers_of(self.scope).get("host"),
        )
        return False

    async def on_ws_connect(self, context: dict[str, Any]) -> Any:
        # Called with connection_init's payload in context["connection_params"]; the user
        # found here stays in the context of every operation on this connection.
        if self.auth_hook is not None:
            params = context.get("connection_params")
            request = AuthRequest("websocket", headers_of(self.scope), params if isinstance(params, dict) else {})
            try:
                context["user"] = await authenticate(self.auth_hook, request)
            except Unauthorized as exc:
                raise ConnectionRejectionError({"message": str(exc) or "unauthorized"}) from None
        return await super().on_ws_connect(context)


def consumer_classes(has_database: bool) -> tuple[type[GraphQLHTTPConsumer], type[GraphQLWSConsumer]]:
    """The HTTP and WebSocket consumers, with the direct dispatch when it may serve (no
    database to clean up after, the fast path on): chosen when an app is built."""
    direct = not has_database and channels_consumers.GATE.active
    return _compose(direct, *handler_classes())


@functools.cache
def _compose(direct: bool, transport_ws: type, legacy_ws: type) -> tuple[type[GraphQLHTTPConsumer], type[GraphQLWSConsumer]]:
    http_bases: tuple[type, ...] = (channels_consumers.DirectDispatch, HTTPConsumer) if direct else (HTTPConsumer,)
    ws_bases: tuple[type, ...] = (channels_consumers.DirectWebSocket, WSConsumer) if direct else (WSConsumer,)
    http = type("GraphQLHTTP", http_bases, {"__module__": __name__})
    ws = type("GraphQLWebSocket", ws_bases, {
        "__module__": __name__,
        "graphql_transport_ws_handler_class": transport_ws,
        "graphql_ws_handler_class": legacy_ws,
    })
    return http, ws  # type: ignore[return-value]
