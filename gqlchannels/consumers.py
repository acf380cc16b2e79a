"""Strawberry's Channels consumers, minus the per-message database housekeeping.

Channels calls `aclose_old_connections()` (a thread hop to clean up Django database
connections) before every inbound ASGI message. A server with no database pays about a
third of a small request's time for nothing, so when Django has no DATABASES configured
these consumers dispatch HTTP and WebSocket events directly. With a database configured
(the app mounted inside a user's Django project) the stock behaviour is kept.

Without a database the WebSocket consumer is also leaner (DirectWSConsumer): Strawberry's
protocol handler reads the ASGI `receive` itself, instead of Channels' dispatch loop feeding
a queue that Strawberry's handler task reads, and the consumer's own layer channel (used
only by `info.context["ws"].listen_to_channel`) starts receiving when first asked for.
Per idle subscribed connection that is three tasks, a queue and a layer receive fewer.

Both transports also put `events` (gqlchannels.events.Events) into the context, and, with
an auth hook, `user` (refusing with 401 over HTTP, 4403 over WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from strawberry.channels import GraphQLHTTPConsumer, GraphQLWSConsumer
from strawberry.channels.handlers.ws_handler import ChannelsWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived, WebSocketDisconnected
from cross_web import HTTPException

from .auth import AuthHook, AuthRequest, Unauthorized, authenticate, headers_of
from .events import Events
from .json_encoding import dumps, dumps_bytes, loads
from .ws_protocols import StrictGraphQLTransportWSHandler, StrictGraphQLWSHandler
from .publish import register_server_layer, server_layer_registered
from .routing import Receive, Scope, Send

logger = logging.getLogger("gqlchannels")

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

    def encode_json(self, data: object) -> bytes:
        return dumps_bytes(data)

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry turns JSONDecodeError into a 400 but lets a body that is not UTF-8
        # (UnicodeDecodeError) through as a 500; found by tests/test_fuzz.py.
        try:
            return loads(data)
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

    def encode_json(self, data: object) -> str:  # a text frame: str
        return dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return loads(data)

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


class _DirectWebSocketAdapter(ChannelsWebSocketAdapter):
    """Strawberry's Channels adapter, reading and writing the ASGI connection directly."""

    ws_consumer: DirectWSConsumer

    async def receive_json(self, *, ignore_parsing_errors: bool = False) -> object:
        """The next JSON message from the client; WebSocketDisconnected once it has gone."""
        consumer = self.ws_consumer
        while True:
            message = await consumer.asgi_receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                consumer.disconnected = True
                raise WebSocketDisconnected
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            if not text:  # as Strawberry's consumer: binary (and empty) frames are not JSON text
                raise NonTextMessageReceived
            try:
                return self.view.decode_json(text)
            except json.JSONDecodeError as exc:
                if not ignore_parsing_errors:
                    raise NonJsonMessageReceived from exc

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        while True:
            try:
                message = await self.receive_json(ignore_parsing_errors=ignore_parsing_errors)
            except WebSocketDisconnected:
                return
            yield message

    async def send_json(self, message: Mapping[str, object]) -> None:
        await self.ws_consumer.base_send({"type": "websocket.send", "text": self.view.encode_json(message)})


class DirectWSConsumer(_DirectDispatchMixin, WSConsumer):
    websocket_adapter_class = _DirectWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_queue = None  # type: ignore[assignment]  # Strawberry's; the adapter reads `receive`

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        self.asgi_receive = receive
        self.disconnected = False
        self._channel: str | None = None
        self._channel_receiver: asyncio.Task[None] | None = None
        if self.channel_layer is not None:
            self._channel = await self.channel_layer.new_channel()
        try:
            if (await receive())["type"] != "websocket.connect":
                return
            await self.run(self)  # accepts (or refuses), then serves the protocol until disconnect
            while not self.disconnected:  # we closed it: wait for the closing handshake, as Channels does
                self.disconnected = (await receive())["type"] == "websocket.disconnect"
        finally:
            if self._channel_receiver is not None:
                self._channel_receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopConsumer):
                    await self._channel_receiver

    @property
    def channel_name(self) -> str:
        """This connection's channel on the layer; receiving on it starts when first asked
        for (whoever sends to it had to ask first, and the layer keeps what comes before)."""
        if self._channel is None:
            raise RuntimeError("no channel layer is configured")
        if self._channel_receiver is None:
            self._channel_receiver = asyncio.ensure_future(self._receive_from_channel(self._channel))
        return self._channel

    async def _receive_from_channel(self, channel: str) -> None:
        assert self.channel_layer is not None
        while True:
            message = await self.channel_layer.receive(channel)
            try:
                await self.dispatch(message)
            except Exception:  # one bad message must not end the connection's other operations
                logger.exception("could not handle a channel layer message of type %r", message.get("type"))


def consumer_classes(has_database: bool) -> tuple[type[GraphQLHTTPConsumer], type[GraphQLWSConsumer]]:
    if has_database:
        return HTTPConsumer, WSConsumer
    return NoDatabaseHTTPConsumer, DirectWSConsumer
