"""ASGI lifespan: create the channel layer inside the worker's own event loop at startup,
close it at shutdown, and keep the state that /readyz reports (this worker's, shared with
its sibling workers through workers.ReadinessBoard)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer

from .. import telemetry
from ..asgi.routing import Receive, Scope, Send
from ..asgi.websockets import WebSocketTracker
from ..config.layer_aliases import forget_layer
from ..errors import LayerUnavailable
from ..events.publish import register_server_layer, unregister_server_layer
from ..metrics import LayerCounters, worker_exited
from .connection_guard import count_open_connections
from .readiness import ReadinessBoard
from .shutdown import stop_gracefully_on_signal

logger = logging.getLogger("gqlchannels")

# How long startup waits for a first broker connection before serving anyway (not ready)
# and how long shutdown gives the layer to close. Both bounded: a broker outage must not
# keep a worker from starting or from exiting.
LAYER_CONNECT_TIMEOUT = 5.0
METRICS_INTERVAL = 1.0  # seconds between updates of the gauges polled from the layer and uvicorn
LAYER_CLOSE_TIMEOUT = 3.0



@dataclasses.dataclass
class ServerState:
    started: bool = False
    stopping: bool = False
    layer: Any = None
    board: ReadinessBoard | None = None  # with several workers: what each of them can do

    def own_reason(self) -> str | None:
        """Why this worker cannot deliver subscriptions now, or None."""
        if self.stopping:
            return "shutting down"
        if not self.started:
            return "starting"
        state_of = getattr(self.layer, "state", None)
        if state_of is None:
            return None
        state = state_of()
        if not state.connected:
            return f"channel layer is not connected to the broker: {state.reason or state.last_error}"
        if not getattr(state, "ready", True):
            return f"channel layer cannot publish: {state.reason}"
        return None

    def not_ready_reason(self) -> str | None:
        """Why /readyz must answer 503: this worker's reason, else a sibling worker's."""
        own = self.own_reason()
        if own is not None or self.board is None:
            return own
        return self.board.sibling_not_ready()

    def share(self) -> None:
        """Tell the sibling workers this worker's state (on every change of it)."""
        if self.board is not None:
            self.board.post(self.own_reason())


class Lifespan:
    """The ASGI app for the `lifespan` scope (Channels' routers have none)."""

    def __init__(self, state: ServerState, websockets: WebSocketTracker,
                 layer_alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.state = state
        self.websockets = websockets
        self.layer_alias = layer_alias  # the Channels alias of the app's layer
        self._metrics: asyncio.Task[None] | None = None

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
        self.state.board = ReadinessBoard.from_environment()
        self.state.share()  # "starting": siblings are not ready until this worker is
        # get_channel_layer() builds the layer on first call; calling it here puts the
        # layer (and any broker connection) in this worker's running loop.
        layer = get_channel_layer(self.layer_alias)
        self.state.layer = layer
        register_server_layer(layer, asyncio.get_running_loop())
        add_state_listener = getattr(layer, "add_state_listener", None)
        if add_state_listener is not None:
            add_state_listener(self.state.share)
        connect = getattr(layer, "connect", None)
        if connect is not None:
            try:
                await connect(timeout=LAYER_CONNECT_TIMEOUT)
            except LayerUnavailable:  # the layer has said why; keep serving queries meanwhile
                logger.info("serving without the channel layer until it connects; /readyz answers 503 till then")
            except Exception as exc:  # keep serving queries; /readyz says why we're not ready
                logger.warning("channel layer not connected at startup: %s", exc)
        self._metrics = asyncio.create_task(self._keep_metrics_current(layer), name="gqlchannels-metrics")
        stop_gracefully_on_signal(self.websockets, on_signal=self.mark_stopping)
        self.state.started = True
        self.state.share()

    async def _keep_metrics_current(self, layer: Any) -> None:
        """The gauges nothing else updates as things change: the layer's counters and state,
        and the open connections WebSockets hold."""
        layer_counters = LayerCounters(layer)
        while True:
            layer_counters.update()
            count_open_connections()
            await asyncio.sleep(METRICS_INTERVAL)

    def mark_stopping(self) -> None:
        self.state.stopping = True
        self.state.share()

    async def shutdown(self) -> None:
        self.mark_stopping()
        if self._metrics is not None:
            self._metrics.cancel()
        worker_exited()
        layer = self.state.layer
        if layer is not None:
            unregister_server_layer(layer)
            try:
                await asyncio.wait_for(layer.close(), LAYER_CLOSE_TIMEOUT)
            except Exception as exc:
                logger.warning("channel layer did not close cleanly: %s", exc)
            # Forget the closed layer so a later startup in this process builds a fresh one.
            forget_layer(self.layer_alias)
        if self.state.board is not None:
            self.state.board.leave()
        if telemetry.TRACING.on:  # export the spans still queued (blocking: in a thread)
            await asyncio.to_thread(telemetry.shutdown)


