"""Strawberry's Channels consumers without Channels' per-message work (a fast path).

Channels calls `aclose_old_connections()` (a thread hop to clean up Django database
connections) before every inbound ASGI message; a server with no database pays about a third
of a small request's time for nothing. `DirectDispatch` hands HTTP and WebSocket events to
their handlers directly.

Strawberry's WebSocket consumer runs Channels' dispatch loop feeding a queue that its
protocol handler's task reads, and receives on its own layer channel from the start.
`DirectWebSocket` lets the protocol handler read the ASGI `receive` itself (through
DirectWebSocketAdapter) and starts receiving on the channel (used only by
`info.context["ws"].listen_to_channel`) when first asked for: per idle subscribed connection,
three tasks, a queue and a layer receive fewer. Its `text_sender` lets the protocol handler
send a message's text it built itself, when the consumer's encoder is marked as orjson's
(`encodes_as_orjson`).

Both replace what Channels' consumer does in its `__call__` and `dispatch`, and Strawberry's
adapter's reading, hence the gate; with other releases, or --no-fast-paths, the consumers
are Strawberry's and Channels' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from strawberry.channels.handlers.ws_handler import ChannelsWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived, WebSocketDisconnected

from . import Kind, override

GATE = override(
    "channels-direct-dispatch", Kind.FAST_PATH, {"channels": ">=4.3,<4.4", "strawberry-graphql": ">=0.341,<0.342"},
    stock="Channels' consumer dispatch and Strawberry's WebSocket adapter",
)

logger = logging.getLogger("gqlchannels")

ASGI_EVENT_PREFIXES = ("http.", "websocket.")


class CloseConnection(Exception):  # noqa: N818 - an instruction, not a failure
    """Raised by a consumer's `decode_json` to close the connection with `code` and `reason`
    (DirectWebSocketAdapter does); Strawberry's own adapter knows only JSONDecodeError."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class DirectDispatch:
    """A Channels consumer mixin: ASGI events go straight to their handler methods."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type", "").startswith(ASGI_EVENT_PREFIXES):
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        # Layer messages go to Strawberry's listen queues, unknown events raise as before.
        await super().dispatch(message)  # type: ignore[misc]


ENCODES_AS_ORJSON = "_gqlchannels_encodes_as_orjson"


def encodes_as_orjson(encode_json: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a consumer's `encode_json` as giving the text of `orjson.dumps(message,
    option=orjson.OPT_NON_STR_KEYS)` for every message orjson encodes (an override in a
    subclass is another function, unmarked)."""
    setattr(encode_json, ENCODES_AS_ORJSON, True)
    return encode_json


class DirectWebSocketAdapter(ChannelsWebSocketAdapter):
    """Strawberry's Channels adapter, reading and writing the ASGI connection directly."""

    ws_consumer: Any  # a DirectWebSocket consumer

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
            except CloseConnection as close:
                await self.close(close.code, close.reason)
                raise WebSocketDisconnected from None
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

    def text_sender(self) -> Callable[[str], Awaitable[None]] | None:
        """What `send_json` does with the text of a message, for a caller that builds the text
        itself (a `next` message, from its payload encoded once for all its subscribers);
        None unless the view's `encode_json` is marked `encodes_as_orjson`, whose text the
        caller can then build byte for byte, and `send_json` is this class's own."""
        if type(self).send_json is not DirectWebSocketAdapter.send_json:
            return None
        if not getattr(type(self.view).encode_json, ENCODES_AS_ORJSON, False):
            return None
        base_send = self.ws_consumer.base_send

        def send_text(text: str) -> Awaitable[None]:
            return base_send({"type": "websocket.send", "text": text})
        return send_text


class DirectWebSocket(DirectDispatch):
    """A mixin for Strawberry's GraphQLWSConsumer: the protocol handler reads `receive`
    itself, and the connection's layer channel is received on only once asked for."""

    websocket_adapter_class = DirectWebSocketAdapter
    channel_layer_alias: str
    channel_layer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_queue = None  # Strawberry's; the adapter reads `receive`

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
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
            await self.run(self)  # type: ignore[attr-defined]  # accepts or refuses, then serves until disconnect
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
