"""Strawberry's WebSocket protocol handlers, refusing malformed messages instead of crashing.

Both of Strawberry's handlers index client messages blindly: a JSON array, a "subscribe"
or "start" whose payload is a string, an id that is a list, each raise inside the
connection's task ("Exception in ASGI application" in the log, the client left hanging;
found by tests/test_fuzz.py). Here every message is checked first, and a malformed one
closes the connection with 4400 (graphql-transport-ws's "invalid message"; the legacy
graphql-ws protocol defines no code, so it gets the same one).
"""

from __future__ import annotations

from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

INVALID_MESSAGE = 4400
# Message types that name an operation, per protocol, and the one that carries its query.
TRANSPORT_WS = {"with_id": ("subscribe", "complete", "next", "error"), "starts": "subscribe"}
LEGACY_WS = {"with_id": ("start", "stop"), "starts": "start"}


def problem_with(message: Any, protocol: dict[str, Any]) -> str | None:
    """Why `message` is not a well-formed client message, or None if it is."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string 'type'"
    kind = message["type"]
    if kind in protocol["with_id"] and not isinstance(message.get("id"), str):
        return f"a '{kind}' message needs a string 'id'"
    if kind == protocol["starts"]:
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return f"a '{kind}' message needs a payload with a string 'query'"
        for key, kind_of in (("variables", dict), ("extensions", dict), ("operationName", str)):
            if payload.get(key) is not None and not isinstance(payload[key], kind_of):
                return f"'{key}' must be a {'JSON object' if kind_of is dict else 'string'}"
    return None


class StrictGraphQLTransportWSHandler(BaseGraphQLTransportWSHandler):
    async def handle_message(self, message: Any) -> None:
        problem = problem_with(message, TRANSPORT_WS)
        if problem is not None:
            await self.handle_invalid_message(f"Invalid message: {problem}"[:120])
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_init_received:
            # Strawberry has cancelled the init timeout, but keeps the finished task, its
            # coroutine and timer for the connection's life: about 1 KB per connection.
            self.connection_init_timeout_task = None


class StrictGraphQLWSHandler(BaseGraphQLWSHandler):
    async def handle_message(self, message: Any) -> None:
        problem = problem_with(message, LEGACY_WS)
        if problem is not None:
            await self.websocket.close(code=INVALID_MESSAGE, reason=f"Invalid message: {problem}"[:120])
            return
        await super().handle_message(message)
