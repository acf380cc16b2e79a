"""ASGI lifespan: create the channel layer inside the worker's own event loop at startup,
close it at shutdown, and keep the state that /readyz reports."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from channels.layers import channel_layers, get_channel_layer

from .connections import WebSocketTracker, close_websockets_before_exit
from .metrics import follow_layer_state, worker_exited
from .publish import register_server_layer, unregister_server_layer
from .routing import Receive, Scope, Send

logger = logging.getLogger("gqlchannels")

# How long startup waits for a first broker connection before serving anyway (not ready)
# and how long shutdown gives the layer to close. Both bounded: a broker outage must not
# keep a worker from starting or from exiting.
LAYER_CONNECT_TIMEOUT = 5.0
LAYER_CLOSE_TIMEOUT = 3.0


@dataclasses.dataclass
class ServerState:
    started: bool = False
    stopping: bool = False
    layer: Any = None

    def not_ready_reason(self) -> str | None:
        if self.stopping:
            return "shutting down"
        if not self.started:
            return "starting"
        state = getattr(self.layer, "state", None)
        if state is not None and not state().connected:
            return "channel layer is not connected to the broker"
        return None


class Lifespan:
    """The ASGI app for the `lifespan` scope (Channels' routers have none)."""

    def __init__(self, state: ServerState, websockets: WebSocketTracker) -> None:
        self.state = state
        self.websockets = websockets
        self._layer_metrics: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        # get_channel_layer() builds the layer on first call; calling it here puts the
        # layer (and any broker connection) in this worker's running loop.
        layer = get_channel_layer()
        self.state.layer = layer
        register_server_layer(layer, asyncio.get_running_loop())
        connect = getattr(layer, "connect", None)
        if connect is not None:
            try:
                await connect(timeout=LAYER_CONNECT_TIMEOUT)
            except Exception as exc:  # keep serving queries; /readyz says why we're not ready
                logger.warning("channel layer not connected at startup: %s", exc)
        self._layer_metrics = asyncio.create_task(follow_layer_state(layer))
        close_websockets_before_exit(self.websockets, on_signal=self.mark_stopping)
        self.state.started = True

    def mark_stopping(self) -> None:
        self.state.stopping = True

    async def shutdown(self) -> None:
        self.state.stopping = True
        if self._layer_metrics is not None:
            self._layer_metrics.cancel()
        worker_exited()
        layer = self.state.layer
        if layer is None:
            return
        unregister_server_layer(layer)
        try:
            await asyncio.wait_for(layer.close(), LAYER_CLOSE_TIMEOUT)
        except Exception as exc:
            logger.warning("channel layer did not close cleanly: %s", exc)
        # Forget the closed layer so a later startup in this process builds a fresh one.
        channel_layers.backends.pop("default", None)
