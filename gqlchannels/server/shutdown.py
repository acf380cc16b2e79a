"""Graceful shutdown of one worker, in front of uvicorn's own.

On SIGTERM (or SIGINT) a worker stops accepting at once, /readyz turns 503, and every
WebSocket client is told "going away" (1001), so it reconnects to another replica while this
one finishes its in-flight HTTP requests; uvicorn alone would keep listening until its next
tick and close WebSockets with 1012 only after that.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from ..asgi.websockets import GOING_AWAY, WebSocketTracker
from ..overrides.uvicorn_server import stop_listening, uvicorn_server_for

logger = logging.getLogger("gqlchannels")


def stop_gracefully_on_signal(tracker: WebSocketTracker, on_signal: Callable[[], None]) -> None:
    """Put ourselves in front of uvicorn's SIGTERM/SIGINT handler in this worker.

    On the first signal, in this order: mark the server as stopping (/readyz turns 503),
    close this worker's listening sockets (new connections are refused rather than queued),
    close every WebSocket with 1001, then hand the signal to uvicorn, which lets in-flight
    HTTP requests finish within --shutdown-timeout and runs the lifespan shutdown. Later
    SIGTERMs (the supervisor relays the one it got) change nothing; a second SIGINT (Ctrl-C
    twice) goes straight to uvicorn, which then stops without waiting. Does nothing when no
    uvicorn server owns the signals (the app mounted elsewhere, a non-main thread).
    """
    loop = asyncio.get_running_loop()
    signalled = False
    closing: set[asyncio.Task[None]] = set()  # a reference, so the task is not collected mid-way

    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous = signal.getsignal(signum)
        except ValueError:
            return
        server = uvicorn_server_for(previous)
        if server is None:
            continue

        def handler(sig: int, frame: Any, previous: Any = previous, server: Any = server) -> None:
            nonlocal signalled
            if signalled:
                if sig == signal.SIGINT:
                    previous(sig, frame)
                return
            signalled = True

            def begin() -> None:  # on the loop: a signal handler may interrupt it anywhere
                on_signal()
                stop_listening(server)
                task = loop.create_task(close_then_exit())
                closing.add(task)
                task.add_done_callback(closing.discard)

            async def close_then_exit() -> None:
                try:
                    closed = await tracker.close_all()
                    if closed:
                        logger.info("closed %d WebSocket connection(s) with %d (going away)", closed, GOING_AWAY)
                finally:
                    previous(sig, frame)

            loop.call_soon_threadsafe(begin)

        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread
            return
