"""Strawberry's WebSocket protocol handlers, refusing malformed messages instead of crashing.

Both of Strawberry's handlers index client messages blindly: a JSON array, a "subscribe"
or "start" whose payload is a string, an id that is a list, each raise inside the
connection's task ("Exception in ASGI application" in the log, the client left hanging;
found by tests/hostile/test_fuzz.py). Here every message is checked first, and a malformed
one closes the connection with 4400 (graphql-transport-ws's "invalid message"; the legacy
graphql-ws protocol defines no code, so it gets the same one).

As graphql-ws's reference server does, a `pong` carries its `ping`'s payload back. The legacy
graphql-ws protocol gets the connection_init timeout graphql-transport-ws has.

`handler_classes()` adds the overrides of gqlchannels.overrides.strawberry_protocols that may
serve: less memory per subscription, and queries and mutations over the legacy protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from .. import telemetry
from ..overrides import strawberry_protocols
from .persisted import PersistedOperations, PersistedQueryError, names_a_persisted_document

INVALID_MESSAGE = 4400
CONNECTION_INIT_TIMEOUT = 4408
# Message types that name an operation, per protocol, the one that carries its query, and
# those whose payload, if any, must be an object (as graphql-ws's own validation has it).
TRANSPORT_WS = {"with_id": ("subscribe", "complete", "next", "error"), "starts": "subscribe",
                "object_payload": ("ping", "pong")}
LEGACY_WS = {"with_id": ("start", "stop"), "starts": "start", "object_payload": ()}


def problem_with(message: Any, protocol: dict[str, Any], persisted: bool = False) -> str | None:
    """Why `message` is not a well-formed client message, or None if it is. With `persisted`,
    an operation may name a persisted document instead of carrying its 'query'."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string 'type'"
    kind = message["type"]
    if kind in protocol["with_id"] and not isinstance(message.get("id"), str):
        return f"a '{kind}' message needs a string 'id'"
    if kind in protocol["object_payload"] and not isinstance(message.get("payload", {}), (dict, type(None))):
        return f"a '{kind}' message's payload must be an object"
    if kind == protocol["starts"]:
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return f"a '{kind}' message needs a payload with a string 'query'"
        query = payload.get("query")
        if not isinstance(query, str) and not (persisted and query is None and names_a_persisted_document(payload)):
            return f"a '{kind}' message needs a payload with a string 'query'"
        for key, kind_of in (("variables", dict), ("extensions", dict), ("operationName", str)):
            if payload.get(key) is not None and not isinstance(payload[key], kind_of):
                return f"'{key}' must be a {'JSON object' if kind_of is dict else 'string'}"
    return None


def _persisted_of(view: Any) -> PersistedOperations | None:
    return getattr(view, "persisted", None)


def with_persisted_document(persisted: PersistedOperations, message: dict[str, Any]) -> dict[str, Any]:
    """The operation message with the text of the persisted document its payload names as
    its 'query' (PersistedQueryError if there is none to run)."""
    payload = message["payload"]
    document = persisted.resolve(payload)
    if document is payload.get("query"):
        return message
    return {**message, "payload": {**payload, "query": document}}


class StrictGraphQLTransportWSHandler(BaseGraphQLTransportWSHandler):
    async def handle_message(self, message: Any) -> None:
        persisted = _persisted_of(self.view)
        problem = problem_with(message, TRANSPORT_WS, persisted is not None)
        if problem is not None:
            await self.handle_invalid_message(f"Invalid message: {problem}"[:120])
            return
        if message["type"] == "subscribe" and persisted is not None and self.connection_acknowledged \
                and message["id"] not in self.operations:  # otherwise refused (4401, 4409) as it is
            try:
                message = with_persisted_document(persisted, message)
            except PersistedQueryError as error:
                await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
                return
        if telemetry.TRACING.on and message["type"] == "subscribe":
            await telemetry.TRACING.otel.websocket_operation(
                self, message, "graphql-transport-ws", functools.partial(super().handle_message, message))
            return
        await super().handle_message(message)

    async def handle_ping(self, message: Any) -> None:
        # The pong carries the ping's payload back, as graphql-ws's server does (a client may
        # put a timestamp or an id there to measure or match the round trip).
        payload = message.get("payload")
        await self.send_message({"type": "pong"} if payload is None else {"type": "pong", "payload": payload})



class StrictGraphQLWSHandler(BaseGraphQLWSHandler):
    async def handle_message(self, message: Any) -> None:
        persisted = _persisted_of(self.view)
        problem = problem_with(message, LEGACY_WS, persisted is not None)
        if problem is not None:
            await self.websocket.close(code=INVALID_MESSAGE, reason=f"Invalid message: {problem}"[:120])
            return
        if message["type"] == "start" and persisted is not None and self.connection_acknowledged:
            try:
                message = with_persisted_document(persisted, message)
            except PersistedQueryError as error:
                await self.send_message({"type": "error", "id": message["id"], "payload": error.formatted})
                return
        if telemetry.TRACING.on and message["type"] == "start":
            await telemetry.TRACING.otel.websocket_operation(
                self, message, "graphql-ws", functools.partial(super().handle_message, message))
            return
        await super().handle_message(message)

    # connection_init timeout. The legacy protocol has none (subscriptions-transport-ws waits
    # forever), so every socket that never sends connection_init stays open; this one closes
    # it as graphql-transport-ws does, with 4408 after --connection-init-timeout.

    init_timeout: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        self.init_timeout = asyncio.ensure_future(self._close_without_connection_init())
        try:
            await super().handle()
        finally:
            self._stop_init_timeout()

    async def handle_connection_init(self, message: Any) -> None:
        self._stop_init_timeout()
        await super().handle_connection_init(message)

    def _stop_init_timeout(self) -> None:
        if self.init_timeout is not None:
            self.init_timeout.cancel()
            self.init_timeout = None  # a finished task kept would cost about 1 KB a connection

    async def _close_without_connection_init(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        with contextlib.suppress(Exception):  # the client may have gone meanwhile: nothing to close
            await self.websocket.close(code=CONNECTION_INIT_TIMEOUT, reason="Connection initialisation timeout")


def handler_classes() -> tuple[type[BaseGraphQLTransportWSHandler], type[BaseGraphQLWSHandler]]:
    """The graphql-transport-ws and graphql-ws handlers, with the overrides that may serve."""
    return _handlers(strawberry_protocols.transport_ws_mixins(), strawberry_protocols.legacy_ws_mixins())


@functools.cache
def _handlers(transport_ws: tuple[type, ...], legacy_ws: tuple[type, ...]) -> tuple[type, type]:
    return (type("GraphQLTransportWSHandler", (*transport_ws, StrictGraphQLTransportWSHandler), {"__module__": __name__}),
            type("GraphQLWSHandler", (*legacy_ws, StrictGraphQLWSHandler), {"__module__": __name__}))
