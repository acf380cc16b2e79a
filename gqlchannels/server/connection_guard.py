"""Bounds on clients that are slow to send a request, or too many: the policy.

uvicorn closes a kept-alive connection that stays idle after a response, but a connection
that never completes a request head is kept forever: each holds a file descriptor, and once
about as many as the open-file limit allows are open, every new client is closed unanswered
(and nothing is logged). httptools, which uvicorn prefers, also keeps whatever a request head
grows to: 200 MB of headers sent in half a second were 220 MB more memory. So:

- A request head (request line and headers) must be complete within `--header-timeout`
  seconds of the connection, or of the first byte of the next request on a kept-alive
  connection: otherwise 408 and the connection is closed. Over 64 KiB: 431 and closed.
- At most `--max-connections` connections (HTTP and WebSocket) are open in one worker. One
  over it is still answered, not dropped: HTTP with 503 and Retry-After, a WebSocket
  handshake is completed and closed with 1013 (try again later). The server's own endpoints
  (/healthz, /readyz, /metrics) are served anyway, so probes and scrapes still see a worker
  that is full. Connections over the cap use the descriptors between the cap and the
  descriptor ceiling (a few short of the open-file limit, so the broker connection and the
  logs keep theirs) while they send their request head; when those run out, the one that has
  waited longest for its head is answered 503 and closed to make room: a flood of idle
  connections cannot keep new clients from an answer.
- Each of those is counted in /metrics and logged at most once a minute (OverloadLog).

uvicorn has no hook for these, so the protocols that enforce them are subclasses of its own
(gqlchannels.overrides.uvicorn_http), which ask the ConnectionGuard here what to do. Outside
the uvicorn releases they were written for, uvicorn's protocol serves with `--max-connections`
as its `limit_concurrency` (a 503 for HTTP requests over it, checked once a head is complete),
and nothing bounds a head's time.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
from typing import Any

from ..asgi.routing import ASGIApp, Receive, Scope, Send
from ..config.settings import RESERVED_PATHS, ConnectionLimits
from ..metrics import connection_refused, connections_changed, header_timed_out
from ..overrides import uvicorn_http

logger = logging.getLogger("gqlchannels")

RETRY_AFTER = 5  # seconds a client over the connection cap is asked to wait
LOG_INTERVAL = 60.0  # seconds between two summaries of refused and timed-out connections


class OverloadLog:
    """Refused and timed-out connections, logged as one WARNING at most once a minute.

    The first event of a quiet period is logged at once, so an operator sees the trouble
    start; what follows within the minute is counted and logged as one summary at its end.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_logged = -math.inf
        self.timer: asyncio.TimerHandle | None = None

    def count(self, event: str) -> None:
        self.counts[event] += 1
        loop = asyncio.get_running_loop()
        if loop.time() - self.last_logged >= LOG_INTERVAL:
            self.flush()
        elif self.timer is None:
            self.timer = loop.call_at(self.last_logged + LOG_INTERVAL, self.flush)

    def flush(self) -> None:
        self.timer = None
        if not self.counts:
            return
        self.last_logged = asyncio.get_running_loop().time()
        counts, limits = self.counts, self.limits
        parts = []
        refusals = [f"{counts[event]} {what}" for event, what in (
            ("503", "HTTP answered 503"), ("1013", "WebSocket closed with 1013"),
            ("none", "closed unanswered at the open-file limit")) if counts[event]]
        if refusals:
            parts.append(f"connections over --max-connections {limits.max_connections}: {', '.join(refusals)}")
        if counts["header_timeout"]:
            parts.append(f"{counts['header_timeout']} connection(s) closed without complete request headers "
                         f"within --header-timeout {limits.header_timeout:g} s")
        logger.warning("%s (one such line a minute at most)", "; ".join(parts))
        counts.clear()


class ConnectionGuard:
    """What the guarded protocols count, log and answer (gqlchannels.overrides.uvicorn_http.Guard)."""

    retry_after = RETRY_AFTER

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.log = OverloadLog(limits)
        self.connections: set[Any] = set()  # uvicorn's, once a connection is made
        self.at_capacity_body = json.dumps({"errors": [{"message": (
            f"the server is at its connection limit; retry in {RETRY_AFTER} seconds")}]}).encode()

    def opened(self, connections: set[Any]) -> None:
        global _active
        _active, self.connections = self, connections
        connections_changed(len(connections))

    def closed(self, connections: set[Any]) -> None:
        connections_changed(len(connections))

    def refused(self, answer: str) -> None:
        connection_refused(answer)
        self.log.count(answer)

    def timed_out(self) -> None:
        header_timed_out()
        self.log.count("header_timeout")

    def over_capacity_app(self, app: ASGIApp) -> ASGIApp:
        """The ASGI app for a connection over the cap: 503, except for the server's own endpoints."""
        body = self.at_capacity_body

        async def over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("path", "").rstrip("/") in RESERVED_PATHS:
                await app(scope, receive, send)
                return
            self.refused("503")
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
                (b"connection", b"close"),
            ]})
            await send({"type": "http.response.body", "body": body})

        return over_capacity


# This worker's guard (each worker gets its own copy with uvicorn's config), once it has seen
# a connection.
_active: ConnectionGuard | None = None


def count_open_connections() -> None:
    """Bring the open-connections gauge up to date: HTTP connections update it as they come
    and go, WebSockets (which uvicorn hands to another protocol) only through this, called
    every second by the lifespan."""
    if _active is not None:
        connections_changed(len(_active.connections))


def uvicorn_http_options(limits: ConnectionLimits) -> dict[str, Any]:
    """uvicorn.Config's options for the HTTP side: the guarded protocols, or uvicorn's own."""
    if uvicorn_http.GATE.active:
        return {"http": uvicorn_http.guarded_protocol(ConnectionGuard(limits)),
                "h11_max_incomplete_event_size": uvicorn_http.MAX_REQUEST_HEAD}
    return {"limit_concurrency": limits.max_connections}
