"""Strawberry's Channels consumers, minus the per-message database housekeeping.

Channels calls `aclose_old_connections()` (a thread hop to clean up Django database
connections) before every inbound ASGI message. A server with no database pays about a
third of a small request's time for nothing, so when Django has no DATABASES configured
these consumers dispatch HTTP and WebSocket events directly. With a database configured
(the app mounted inside a user's Django project) the stock behaviour is kept.

Both transports also put `events` (gqlchannels.events.Events) into the context.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.consumer import get_handler_name
from strawberry.channels import GraphQLHTTPConsumer, GraphQLWSConsumer

from .events import Events
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
    pass


class WSConsumer(_EventsContextMixin, GraphQLWSConsumer):
    pass


class NoDatabaseHTTPConsumer(_DirectDispatchMixin, HTTPConsumer):
    pass


class NoDatabaseWSConsumer(_DirectDispatchMixin, WSConsumer):
    pass


def consumer_classes(has_database: bool) -> tuple[type[GraphQLHTTPConsumer], type[GraphQLWSConsumer]]:
    if has_database:
        return HTTPConsumer, WSConsumer
    return NoDatabaseHTTPConsumer, NoDatabaseWSConsumer
