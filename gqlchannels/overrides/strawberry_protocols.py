"""Strawberry's WebSocket protocol handlers, leaner and serving what the protocol carries.

`LeanTransportWSHandling` (a fast path) holds less for each running graphql-transport-ws
subscription. Strawberry's handler reads the connection through an async generator and runs
each operation as its task, a coroutine that sends the results, and a generator-based context
manager that closes the result stream: two async generators (each also in the loop's weak set
of them) and a coroutine frame, kept for the subscription's life. Here the connection is read
with a coroutine (the adapter's `receive_json`, when it has one), and the operation's task
itself sends the results and closes the stream: same messages, same order, about 1.5 KB less
per subscribed connection. A `next` payload without errors or extensions is encoded once for
all the subscribers given the same result (`encoded_payload`), and when the connection's
encoder is orjson's and the sending Strawberry's, the message is sent as its text, built
from the operation's prefix and that payload's text (`payload_text`): Strawberry's three
sending coroutines and the adapter's, the message dict and its encoding skipped, the same
bytes on the wire. Strawberry's cancelled connection_init timeout task (about 1 KB)
is let go once connection_init has come.

`LegacyQueriesAndMutations` (a fix) runs queries and mutations over the legacy graphql-ws
protocol, which carries them (one `data`, then `complete`) and which clients such as gql's
apollo mode and Apollo's old WebSocketLink use for everything; Strawberry's handler runs
subscriptions only and answers anything else "queries are not allowed".

Both are copies of Strawberry's own methods, changed (and use its private
`_OperationStreamClosed`, `_handle_pre_execution_error`, `_reject_incremental_delivery`),
hence the gates: with another Strawberry, its own methods serve.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived, WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.types.execution import ExecutionResult, PreExecutionError

from . import Kind, override

LEAN_GATE = override(
    "strawberry-transport-ws-handler", Kind.FAST_PATH, {"strawberry-graphql": ">=0.341,<0.342"},
    stock="Strawberry's graphql-transport-ws handler (about 1.5 KB more per subscription)",
)
LEGACY_GATE = override(
    "strawberry-graphql-ws-queries", Kind.FIX, {"strawberry-graphql": ">=0.341,<0.342"},
    stock="Strawberry's legacy graphql-ws handler (subscriptions only: queries and mutations refused)",
)


# (a result's data, its payload's text, the same as an orjson.Fragment); None, None for data
# orjson cannot encode.
_last_encoded: tuple[Any, str | None, Any] = (None, None, None)


def _encoded(data: Any) -> tuple[str | None, Any]:
    """`{"data": data}` encoded by orjson, as text and as an orjson.Fragment, once for all the
    subscribers given this very `data` object (graphql_shared_events gives an event's one
    result to every subscriber who would get the same; an event's fan-out sends them one after
    the other). A data object is never changed after execution, and one not shared is sent
    once: the memo by identity then never hits. (None, None) when orjson cannot encode it."""
    global _last_encoded
    last_data, text, fragment = _last_encoded
    if data is last_data and data is not None:
        return text, fragment
    try:
        text = orjson.dumps({"data": data}, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = fragment = None
    else:
        fragment = orjson.Fragment(text)
    _last_encoded = (data, text, fragment)
    return text, fragment


def encoded_payload(data: Any) -> Any:
    """`{"data": data}` as an orjson.Fragment the server's encoder embeds as it is, encoded once
    for all the subscribers given `data` (`_encoded`); a value orjson cannot encode is left to
    the server's encoder, as before."""
    fragment = _encoded(data)[1]
    return {"data": data} if fragment is None else fragment


def payload_text(data: Any) -> str | None:
    """The text of `{"data": data}` as orjson encodes it, once for all the subscribers given
    `data` (`_encoded`); None when orjson cannot encode it."""
    return _encoded(data)[0]


def sends_as_strawberry(handler: Any, operation: Operation) -> bool:
    """Whether the handler's and the operation's sending of messages are Strawberry's own (a
    `next` message may then be sent as text, as they would send it)."""
    return (type(operation).send_operation_message is Operation.send_operation_message
            and type(handler).send_message is BaseGraphQLTransportWSHandler.send_message)


def next_message_prefix(operation_id: object) -> str | None:
    """The text that starts every `next` message of an operation, as orjson encodes the message
    (`prefix + payload_text(data) + "}"`); None if orjson cannot encode the id."""
    try:
        encoded_id = orjson.dumps(operation_id).decode()
    except TypeError:
        return None
    return '{"id":' + encoded_id + ',"type":"next","payload":'


class LeanTransportWSHandling:
    """A mixin for a subclass of Strawberry's BaseGraphQLTransportWSHandler."""

    websocket: Any
    schema: Any
    context: Any
    root_value: Any
    operations: dict[str, Any]

    async def handle(self) -> None:
        receive_json = getattr(self.websocket, "receive_json", None)
        if receive_json is None:  # an adapter that only iterates (Strawberry's Channels adapter)
            await super().handle()  # type: ignore[misc]
            return
        # Strawberry's handle(), reading with a coroutine instead of an async generator.
        self.on_request_accepted()
        try:
            try:
                while True:  # until receive_json raises WebSocketDisconnected
                    await self.handle_message(await receive_json())
            except NonTextMessageReceived:
                await self.handle_invalid_message("WebSocket message type must be text")
            except NonJsonMessageReceived:
                await self.handle_invalid_message("WebSocket message must be valid JSON")
        except WebSocketDisconnected:
            pass
        finally:
            await self.shutdown()

    async def run_operation(self, operation: Operation) -> None:
        """Strawberry's run_operation and _send_result_stream in one coroutine, the stream
        closed in a finally block instead of a generator-based context manager."""
        # A private name of the releases the gate names: imported where only a handler the
        # gate gave this mixin runs, so that another Strawberry without it still imports this module.
        from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import _OperationStreamClosed

        try:
            result_source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            try:
                send_text = next_prefix = None
                text_sender = getattr(self.websocket, "text_sender", None)
                if text_sender is not None:
                    send_text = text_sender()
                    if send_text is not None and sends_as_strawberry(self, operation):
                        next_prefix = next_message_prefix(operation.id)
                is_first_result = True
                async for result in result_source:
                    if is_first_result and isinstance(result, PreExecutionError):
                        await self._handle_pre_execution_error(operation, result)
                        break
                    if not isinstance(result, ExecutionResult):
                        await self._reject_incremental_delivery(operation)
                        break
                    if result.errors or result.extensions:
                        await operation.send_next(result)
                    elif next_prefix is not None and (text := payload_text(result.data)) is not None:
                        # Strawberry's send_next, send_operation_message and send_message, and the
                        # adapter's send_json: the message's text, its payload's encoded once
                        # for every subscriber given it.
                        if not operation.completed:
                            await send_text(next_prefix + text + "}")  # type: ignore[misc]
                    else:  # Strawberry's send_next, the payload encoded once for every subscriber given it
                        await operation.send_operation_message(
                            {"id": operation.id, "type": "next", "payload": encoded_payload(result.data)})
                    is_first_result = False
            finally:
                with contextlib.suppress(Exception):  # as Strawberry's aclosing
                    await result_source.aclose()
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)  # type: ignore[misc]
        if self.connection_init_received:
            # Strawberry has cancelled the init timeout, but keeps the finished task, its
            # coroutine and timer for the connection's life: about 1 KB per connection.
            self.connection_init_timeout_task = None



class LegacyQueriesAndMutations:
    """A mixin for a subclass of Strawberry's BaseGraphQLWSHandler."""

    schema: Any
    context: Any
    root_value: Any
    subscriptions: dict[str, Any]
    tasks: dict[str, Any]

    async def handle_async_results(self, operation_id: str, query: str, operation_name: str | None,
                                   variables: dict[str, object] | None) -> None:
        """Strawberry's, for every kind of operation. The protocol carries queries and mutations
        as well (one `data`, then `complete`), and clients such as gql's apollo mode and Apollo's
        old WebSocketLink send them all over it; Strawberry's runs subscriptions only and
        answers anything else "queries are not allowed"."""
        try:
            result_source = await self.schema.stream(
                query=query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = result_source
            is_first_result = True
            async for result in result_source:
                if is_first_result and isinstance(result, PreExecutionError):
                    assert result.errors
                    await self.send_message({"type": "error", "id": operation_id,
                                             "payload": result.errors[0].formatted})
                    return
                if not isinstance(result, ExecutionResult):  # @defer/@stream: no message carries it
                    await self.send_message({"type": "error", "id": operation_id, "payload": {
                        "message": "Incremental delivery is not supported over graphql-ws"}})
                    return
                await self.send_data_message(result, operation_id)
                is_first_result = False
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
        finally:
            # As Strawberry's: a finished operation no longer counts towards the limit.
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


def transport_ws_mixins() -> tuple[type, ...]:
    return (LeanTransportWSHandling,) if LEAN_GATE.active else ()


def legacy_ws_mixins() -> tuple[type, ...]:
    return (LegacyQueriesAndMutations,) if LEGACY_GATE.active else ()
