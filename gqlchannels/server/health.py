"""Liveness and readiness: /healthz answers while the process serves, /readyz while it
can also deliver subscriptions (started, channel layer connected, not shutting down)."""

from __future__ import annotations

import json

from ..asgi.routing import Receive, Scope, Send, send_json
from .lifespan import ServerState


def healthz_app(state: ServerState):  # noqa: ANN201 - an ASGI callable
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_json(send, 200, b'{"status":"ok"}')

    return app


def readyz_app(state: ServerState):  # noqa: ANN201 - an ASGI callable
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        reason = state.not_ready_reason()
        if reason is None:
            await send_json(send, 200, b'{"status":"ready"}')
        else:
            await send_json(send, 503, json.dumps({"status": "unavailable", "reason": reason}).encode())

    return app
