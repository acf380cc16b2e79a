"""uvicorn's WebSocket protocol (websockets-sansio), forgetting the handshake once it is done.

uvicorn keeps the handshake's request and response objects (with their header
multi-dicts) for as long as the connection lives, about 4 KB per idle WebSocket; the ASGI
scope already holds everything the application needs from them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        self.request = None  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete:
            self.response = None  # type: ignore[assignment]  # sent: the accept (or refusal) is done
