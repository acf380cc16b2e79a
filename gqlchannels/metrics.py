"""Prometheus metrics at /metrics (prometheus-client), correct with several workers.

With --workers > 1 the server points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start, each worker writes its samples there, and whichever worker answers a
scrape reports the sum over all of them. Gauges of live things (connections,
subscriptions) count only live workers.
"""

from __future__ import annotations

import os
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

from .asgi.routing import ASGIApp, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OPERATION_KEY = "gqlchannels.operation"  # set in the ASGI scope by the extension, read by the middleware

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
LAYER_DROPPED = Counter(
    "gqlchannels_layer_dropped_total",
    "Channel layer messages dropped, by reason: full (a receiver's buffer was full), expired (waited "
    "too long for its receiver), broker (refused by a full broker queue or returned), undecodable",
    ["reason"],
)
# reason label -> the LayerState field counting it
LAYER_DROP_REASONS = {"full": "dropped_full", "expired": "dropped_expired", "broker": "dropped_at_broker",
                      "undecodable": "undecodable"}
CONNECTIONS_OPEN = Gauge(
    "gqlchannels_connections_open", "Open client connections, HTTP and WebSocket", multiprocess_mode="livesum",
)
CONNECTIONS_REFUSED = Counter(
    "gqlchannels_connections_refused_total",
    "Connections over --max-connections, by answer: 503 (HTTP), 1013 (WebSocket close code), "
    "none (closed at once, at the open-file limit)",
    ["answer"],
)
REFUSAL_ANSWERS = ("503", "1013", "none")
for _answer in REFUSAL_ANSWERS:
    CONNECTIONS_REFUSED.labels(_answer)  # listed from the start, at 0
EVENTS_SHARED = Counter(
    "gqlchannels_subscription_events_shared_total",
    "Subscription events given to a subscriber as the result another subscriber's execution of the same "
    "operation and event produced, instead of being executed again",
)
HEADER_TIMEOUTS = Counter(
    "gqlchannels_header_timeouts_total", "Connections closed for not completing request headers in --header-timeout",
)
PERSISTED_OPERATIONS = Counter(
    "gqlchannels_persisted_operations_total",
    "Requests naming a persisted document (or, with --only-persisted, any document) by outcome: hit (served "
    "from the manifest or the APQ store), miss (not found), registered (stored by APQ), too_large (run, too "
    "large to store), refused (--only-persisted, or APQ off), invalid (malformed, or a hash that does not match)",
    ["outcome"],
)
PERSISTED_OUTCOMES = ("hit", "miss", "registered", "too_large", "refused", "invalid")
for _outcome in PERSISTED_OUTCOMES:
    PERSISTED_OPERATIONS.labels(_outcome)


# (status, operation) -> its HTTP_REQUESTS child, operation -> its HTTP_DURATION child: looked
# up once, not through labels() (a lock and a tuple of strings) on every request.
_request_counters: dict[tuple[int, str], Any] = {}
_request_durations: dict[str, Any] = {}


def http_request_done(status: int, operation: str, seconds: float) -> None:
    """Count one GraphQL HTTP request: its status, its operation type and how long it took."""
    counter = _request_counters.get((status, operation))
    if counter is None:
        counter = _request_counters[(status, operation)] = HTTP_REQUESTS.labels(str(status), operation)
    counter.inc()
    duration = _request_durations.get(operation)
    if duration is None:
        duration = _request_durations[operation] = HTTP_DURATION.labels(operation)
    duration.observe(seconds)


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


def connections_changed(open_now: int) -> None:
    CONNECTIONS_OPEN.set(open_now)


def connection_refused(answer: str) -> None:
    CONNECTIONS_REFUSED.labels(answer).inc()


def header_timed_out() -> None:
    HEADER_TIMEOUTS.inc()


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


class LayerCounters:
    """Copies a channel layer's own counters (its `state()`) into the metrics."""

    def __init__(self, layer: Any) -> None:
        self.state_of = getattr(layer, "state", None)
        self.seen = {"reconnects": 0, **{outcome: 0 for outcome in LAYER_OUTCOMES},
                     **{field: 0 for field in LAYER_DROP_REASONS.values()}}
        self.counters: dict[str, Any] = {"reconnects": LAYER_RECONNECTS,
                                         **{outcome: LAYER_MESSAGES.labels(outcome) for outcome in LAYER_OUTCOMES},
                                         **{field: LAYER_DROPPED.labels(reason)
                                            for reason, field in LAYER_DROP_REASONS.items()}}

    def update(self) -> None:
        if self.state_of is None:  # a layer that keeps no counters (Channels' own) is always there
            LAYER_CONNECTED.set(1)
            return
        state = self.state_of()
        LAYER_CONNECTED.set(1 if state.connected else 0)
        for name, seen in self.seen.items():
            value = getattr(state, name, None)
            if isinstance(value, int) and value > seen:
                self.counters[name].inc(value - seen)
                self.seen[name] = value


def worker_exited(pid: int | None = None) -> None:
    """Drop a worker's live gauges from the shared directory: this worker's when it stops,
    a dead one's (`pid`) when the supervisor replaces it, so gauges count only what is open."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid or os.getpid())
