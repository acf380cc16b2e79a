"""Strawberry's Channels consumers, minus the per-message database housekeeping.

Channels calls `aclose_old_connections()` (a thread hop to clean up Django database
connections) before every inbound ASGI message. A server with no database pays about a
third of a small request's time for nothing, so when Django has no DATABASES configured
these consumers dispatch HTTP and WebSocket events directly. With a database configured
(the app mounted inside a user's Django project) the stock behaviour is kept.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from strawberry.channels import GraphQLHTTPConsumer, GraphQLWSConsumer

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


class NoDatabaseHTTPConsumer(_DirectDispatchMixin, GraphQLHTTPConsumer):
    pass


class NoDatabaseWSConsumer(_DirectDispatchMixin, GraphQLWSConsumer):
    pass


def consumer_classes(has_database: bool) -> tuple[type[GraphQLHTTPConsumer], type[GraphQLWSConsumer]]:
    if has_database:
        return GraphQLHTTPConsumer, GraphQLWSConsumer
    return NoDatabaseHTTPConsumer, NoDatabaseWSConsumer
