"""Path routing for one server: GraphQL at its path, health endpoints, 404 for the rest.

Channels' URLRouter raises on an unmatched path, which uvicorn turns into a 500. A server
must answer a stranger's request for /favicon.ico or /wp-login.php with a 404, so routing
is an exact lookup here, and the fallback is an answer, not an exception.

Both routers are tail calls: they return the chosen app's awaitable instead of awaiting it,
so no frame of theirs stays on the stack while a WebSocket is open (about 250 bytes each,
per connection). They are still single-callable ASGI apps: `await router(scope, receive,
send)` works as before, and asgiref, uvicorn and asyncio see a coroutine function.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import markcoroutinefunction
from channels.routing import ProtocolTypeRouter

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ProtocolRouter(ProtocolTypeRouter):
    """Channels' ProtocolTypeRouter, as a tail call."""

    _asgi_single_callable = True  # asgiref's mark, for servers that check with it

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        application = self.application_mapping.get(scope["type"])
        if application is None:
            raise ValueError(f"No application configured for scope type {scope['type']!r}")
        return application(scope, receive, send)


class PathRouter:
    """Dispatch on the exact path (a trailing slash is ignored); anything else is a 404."""

    _asgi_single_callable = True

    def __init__(self, routes: Mapping[str, ASGIApp], hint: str) -> None:
        self.routes = {path.rstrip("/") or "/": app for path, app in routes.items()}
        self.hint = hint

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        path = scope.get("path", "")
        app = self.routes.get(path.rstrip("/") or "/")
        if app is None:
            return not_found(scope, receive, send, self.hint)
        return app(scope, receive, send)


def not_found_body(path: str, hint: str) -> bytes:
    """The body of every 404 the server sends: what was asked for, and where to go instead."""
    return json.dumps({"error": "not found", "path": path, "hint": hint}).encode()


async def not_found(scope: Scope, receive: Receive, send: Send, hint: str) -> None:
    body = not_found_body(scope.get("path", ""), hint)
    if scope["type"] == "http":
        await send_json(send, 404, body)
        return
    # A WebSocket handshake: answer with a real 404 where the server supports the
    # websocket.http.response extension (uvicorn does), else refuse the upgrade (403).
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def send_json(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    """A whole JSON response; `close`: and the connection closed after it (`Connection: close`)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *([(b"connection", b"close")] if close else []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
