"""Strawberry's Channels consumers, minus the per-message database housekeeping.

Channels calls `aclose_old_connections()` (a thread hop to clean up Django database
connections) before every inbound ASGI message. A server with no database pays about a
third of a small request's time for nothing, so when Django has no DATABASES configured
these consumers dispatch HTTP and WebSocket events directly. With a database configured
(the app mounted inside a user's Django project) the stock behaviour is kept.

Both transports also put `events` (gqlchannels.events.Events) into the context, and, with
an auth hook, `user` (refusing with 401 over HTTP, 4403 over WebSocket).
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.consumer import get_handler_name
from strawberry.channels import GraphQLHTTPConsumer, GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from cross_web import HTTPException

from .auth import AuthHook, AuthRequest, Unauthorized, authenticate, headers_of
from .events import Events
from .ws_protocols import StrictGraphQLTransportWSHandler, StrictGraphQLWSHandler
from .publish import register_server_layer, server_layer_registered

ASGI_EVENT_PREFIXES = ("http.", "websocket.")


class _DirectDispatchMixin:
    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type", "").startswith(ASGI_EVENT_PREFIXES):
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        # Layer messages go to Strawberry's listen queues, unknown events raise as before.
        await super().dispatch(message)  # type: ignore[misc]


class _EventsContextMixin:
    """Adds `events` (listen and publish) to Strawberry's context dict, over both transports."""

    channel_layer: Any

    async def get_context(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = await super().get_context(*args, **kwargs)  # type: ignore[misc]
        if self.channel_layer is not None and not server_layer_registered():
            # Mounted in a user's router without our lifespan: the first request tells
            # gqlchannels.publish() which layer and loop this server runs.
            register_server_layer(self.channel_layer, asyncio.get_running_loop())
        context["events"] = Events(self.channel_layer)
        return context


class HTTPConsumer(_EventsContextMixin, GraphQLHTTPConsumer):
    def __init__(self, *args: Any, auth_hook: AuthHook | None = None, ide_html: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auth_hook = auth_hook
        self.ide_html = ide_html

    @property
    def graphql_ide_html(self) -> str:
        # The page served from the package (gqlchannels.ide), not the one loading from a CDN.
        return self.ide_html if self.ide_html is not None else super().graphql_ide_html

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry turns JSONDecodeError into a 400 but lets a body that is not UTF-8
        # (UnicodeDecodeError) through as a 500; found by tests/test_fuzz.py.
        try:
            return super().decode_json(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON: it is not UTF-8") from None

    async def get_context(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = await super().get_context(*args, **kwargs)
        if self.auth_hook is not None:
            try:
                context["user"] = await authenticate(self.auth_hook, AuthRequest("http", headers_of(self.scope)))
            except Unauthorized as exc:
                raise HTTPException(401, str(exc) or "unauthorized") from None
        return context


class WSConsumer(_EventsContextMixin, GraphQLWSConsumer):
    graphql_transport_ws_handler_class = StrictGraphQLTransportWSHandler
    graphql_ws_handler_class = StrictGraphQLWSHandler

    def __init__(self, *args: Any, auth_hook: AuthHook | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auth_hook = auth_hook

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


class NoDatabaseHTTPConsumer(_DirectDispatchMixin, HTTPConsumer):
    pass


class NoDatabaseWSConsumer(_DirectDispatchMixin, WSConsumer):
    pass


def consumer_classes(has_database: bool) -> tuple[type[GraphQLHTTPConsumer], type[GraphQLWSConsumer]]:
    if has_database:
        return HTTPConsumer, WSConsumer
    return NoDatabaseHTTPConsumer, NoDatabaseWSConsumer
