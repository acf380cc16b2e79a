"""Prometheus metrics at /metrics (prometheus-client), correct with several workers.

With --workers > 1 the server points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start, each worker writes its samples there, and whichever worker answers a
scrape reports the sum over all of them. Gauges of live things (connections,
subscriptions) count only live workers.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .routing import ASGIApp, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OPERATION_KEY = "gqlchannels.operation"  # set in the ASGI scope by the extension, read by the middleware
LAYER_POLL_INTERVAL = 1.0

HTTP_REQUESTS = Counter(
    "gqlchannels_http_requests_total", "GraphQL HTTP requests by status and operation type",
    ["status", "operation"],
)
HTTP_DURATION = Histogram(
    "gqlchannels_http_request_duration_seconds", "GraphQL HTTP request latency", ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GRAPHQL_ERRORS = Counter(
    "gqlchannels_graphql_errors_total", "GraphQL results carrying errors, by operation type", ["operation"],
)
WEBSOCKETS_OPEN = Gauge(
    "gqlchannels_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum",
)
SUBSCRIPTIONS_ACTIVE = Gauge(
    "gqlchannels_subscriptions_active", "Running GraphQL subscriptions", multiprocess_mode="livesum",
)
LAYER_CONNECTED = Gauge(
    "gqlchannels_layer_connected", "1 when the channel layer is connected to its broker (min over workers)",
    multiprocess_mode="livemin",
)
LAYER_RECONNECTS = Counter("gqlchannels_layer_reconnects_total", "Channel layer reconnections to the broker")
LAYER_MESSAGES = Counter(
    "gqlchannels_layer_messages_total", "Channel layer messages by outcome: published, delivered, dropped",
    ["outcome"],
)
LAYER_OUTCOMES = ("published", "delivered", "dropped")


def operation_of(execution_context: Any) -> str:
    try:
        operation = execution_context.operation_type
    except Exception:  # a document that does not parse has no operation
        return "invalid"
    return getattr(operation, "value", "invalid")


def _scope_of(context: Any) -> dict[str, Any] | None:
    request = context.get("request") if isinstance(context, dict) else None
    holder = getattr(request, "consumer", request)
    scope = getattr(holder, "scope", None)
    return scope if isinstance(scope, dict) else None


def operation_finished(execution_context: Any) -> None:
    """Label the HTTP request with its operation type; count a result that carries errors."""
    operation = operation_of(execution_context)
    scope = _scope_of(execution_context.context)
    if scope is not None and scope.get("type") == "http":
        scope[OPERATION_KEY] = operation
    result = execution_context.result
    if result is not None and getattr(result, "errors", None):
        GRAPHQL_ERRORS.labels(operation).inc()


class HTTPMetrics:
    """ASGI middleware for the GraphQL HTTP route: status, operation and latency per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before answering, uvicorn answers 500

        async def send_with_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            operation = scope.get(OPERATION_KEY, "none")
            HTTP_REQUESTS.labels(str(status), operation).inc()
            HTTP_DURATION.labels(operation).observe(time.perf_counter() - started)


def websocket_count_changed(delta: int) -> None:
    WEBSOCKETS_OPEN.inc(delta)


def metrics_app() -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        body = generate_latest(registry)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


async def follow_layer_state(layer: Any) -> None:
    """Copy the layer's own counters into the metrics, once a second, until cancelled."""
    state_of = getattr(layer, "state", None)
    if state_of is None:  # the in-memory layer is always "connected" and keeps no counters
        LAYER_CONNECTED.set(1)
        return
    seen = {"reconnects": 0, **{outcome: 0 for outcome in LAYER_OUTCOMES}}
    while True:
        state = state_of()
        LAYER_CONNECTED.set(1 if state.connected else 0)
        for name in seen:
            value = getattr(state, name, None)
            if isinstance(value, int) and value > seen[name]:
                counter = LAYER_RECONNECTS if name == "reconnects" else LAYER_MESSAGES.labels(name)
                counter.inc(value - seen[name])
                seen[name] = value
        await asyncio.sleep(LAYER_POLL_INTERVAL)


def worker_exited() -> None:
    """Drop this worker's live gauges from the shared directory."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())
