"""The instrumentation itself: imported only when tracing is on (gqlchannels.telemetry).

Spans follow OpenTelemetry's semantic conventions: an HTTP server span per request of the
GraphQL route (honouring an incoming `traceparent`), a span per WebSocket operation, a span
per GraphQL operation (`graphql.operation.name`, `graphql.operation.type`, and a SHA-256 of
the document rather than its text, which may hold what clients would not want exported), a
PRODUCER span per publish and a CONSUMER span per message a subscription receives, child of
the publish's span wherever it was made (another server, a script), linked to the
subscription it was delivered to.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import importlib.metadata
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from ..errors import ConfigError
from . import TracedMessage, trace_headers_of

logger = logging.getLogger("gqlchannels")

TRACER = trace.get_tracer("gqlchannels")  # a proxy: it follows the provider set later
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
INPROCESS_SYSTEM = "gqlchannels.inprocess"
_provider: Any = None  # the SDK provider this module configured, if it did


# -- the SDK -------------------------------------------------------------------------------


def configure_sdk(service_name: str) -> None:
    """OpenTelemetry's SDK set up from the standard variables (OTEL_SERVICE_NAME,
    OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER[_ARG], OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*,
    OTEL_BSP_*), unless the process has a tracer provider already (its owner configured it)."""
    global _provider
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    for exporter in exporters_from_environment():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider


def exporters_from_environment(environ: Mapping[str, str] = os.environ) -> list[Any]:
    """The span exporters OTEL_TRACES_EXPORTER names (default otlp, over HTTP/protobuf);
    ConfigError naming what is wrong."""
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    exporters = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                        or "http/protobuf").strip()
            if protocol == "http/protobuf":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
                continue
            if protocol != "grpc":
                raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported: use http/protobuf (or "
                                  "grpc, with opentelemetry-exporter-otlp-proto-grpc installed).")
            name = "otlp_proto_grpc"
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
            continue
        found = list(importlib.metadata.entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            raise ConfigError(f"OTEL_TRACES_EXPORTER names {name!r}, and no installed package provides that exporter "
                              "(gqlchannels[otel] brings otlp over http/protobuf, and console).")
        exporters.append(found[0].load()())
    return exporters


def shutdown(timeout: float) -> None:
    """Export the spans still queued, within `timeout` seconds."""
    if _provider is not None:
        _provider.force_flush(int(timeout * 1000))


def _unsampled(parent: Context | None = None) -> bool:
    """The trace `parent` (default: the current one) was not sampled. Its children would not
    be either, whatever the sampler (parent-based ones follow the parent, ratio-based ones
    decide by the trace id alone), so the instrumentation makes none: at 1% sampling, 99% of
    operations cost one span (the request's) instead of several."""
    span_context = trace.get_current_span(parent).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


def _end_detaching(token: Any) -> None:
    """Restore the context from before `attach`. An operation's span may end in another context
    than it began in (a subscription's generator closed by a finaliser's task): there is then
    nothing to restore, where OpenTelemetry's `detach` would log an ERROR with a traceback."""
    if isinstance(token, contextvars.Token):  # what attach returns (OpenTelemetry's API: Token[Context])
        try:
            token.var.reset(token)
        except ValueError:  # made in another context
            pass
    else:
        otel_context.detach(token)


# -- HTTP ----------------------------------------------------------------------------------


class HTTPServerSpans:
    """ASGI middleware: a SERVER span per HTTP request, continuing the client's `traceparent`."""

    def __init__(self, app: Any, route: str) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ())}
        parent = propagate.extract(headers)
        method = scope.get("method", "GET")
        known = method if method in HTTP_METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": known, "http.route": self.route, "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"), "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if known != method:
            attributes["http.request.method_original"] = method
        if scope.get("query_string"):
            attributes["url.query"] = scope["query_string"].decode("latin-1")
        if scope.get("server"):
            attributes["server.address"], attributes["server.port"] = scope["server"][0], scope["server"][1]
        if scope.get("client"):
            attributes["client.address"] = scope["client"][0]
        if "user-agent" in headers:
            attributes["user_agent.original"] = headers["user-agent"]
        span = TRACER.start_span(f"{known} {self.route}", context=parent, kind=SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 0

        async def send_with_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status))
            span.end()
            _end_detaching(token)


class BySampling:
    """ASGI, inside HTTPServerSpans: a request whose server span records (its trace is sampled)
    goes to `sampled`, the route whose schema extension describes each GraphQL operation in
    spans; the others to `unsampled` (the lean handler), which makes no spans of its own. An
    unsampled request makes no spans on either (their children would not be sampled either:
    `_unsampled`), so both answer it alike, and at 1% sampling 99% of requests cost what
    they cost untraced, plus a span that records nothing."""

    def __init__(self, sampled: Any, unsampled: Any) -> None:
        self.sampled = sampled
        self.unsampled = unsampled

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.sampled if trace.get_current_span().is_recording() else self.unsampled
        await app(scope, receive, send)


# -- WebSocket operations ------------------------------------------------------------------


async def websocket_operation(handler: Any, message: dict[str, Any], protocol: str,
                              handle: Callable[[], Awaitable[None]]) -> None:
    """A SERVER span for one operation a WebSocket client starts (`subscribe`, or the legacy
    `start`), over the task that runs it; its parent is the handshake's `traceparent`."""
    scope = getattr(getattr(handler, "view", None), "scope", None) or {}
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", ())}
    payload = message.get("payload") or {}
    operation_id = message.get("id")
    attributes: dict[str, Any] = {"network.protocol.name": "websocket", "gqlchannels.websocket.subprotocol": protocol,
                                  "gqlchannels.websocket.operation_id": str(operation_id), "url.path": scope.get("path", "")}
    if isinstance(payload.get("operationName"), str):
        attributes["graphql.operation.name"] = payload["operationName"]
    span = TRACER.start_span(f"{protocol} {message.get('type')}", context=propagate.extract(headers),
                             kind=SpanKind.SERVER, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        await handle()  # creates the operation's task, which inherits the span as its parent
    except BaseException:
        span.end()
        raise
    finally:
        _end_detaching(token)
    task = _operation_task(handler, operation_id)
    if task is None or task.done():
        span.end()
    else:
        task.add_done_callback(lambda _: span.end())


def _operation_task(handler: Any, operation_id: Any) -> asyncio.Task[Any] | None:
    operation = (getattr(handler, "operations", None) or {}).get(operation_id)
    task = getattr(operation, "task", None)
    if task is None:
        task = (getattr(handler, "tasks", None) or {}).get(operation_id)
    return task if isinstance(task, asyncio.Future) else None


# -- GraphQL operations --------------------------------------------------------------------


class OperationSpans:
    """Used by the schema extension: one span per GraphQL operation, current while it runs."""

    def start(self) -> tuple[Any, Any]:
        if _unsampled():
            return None, None
        span = TRACER.start_span("GraphQL Operation", kind=SpanKind.INTERNAL)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end(self, span: Any, token: Any, execution_context: Any, error: BaseException | None) -> None:
        if span is None:
            return
        if not span.is_recording():  # not sampled: nothing to describe
            span.end()
            _end_detaching(token)
            return
        try:
            operation_type = _operation_type(execution_context)
            name = _operation_name(execution_context)
            if operation_type:
                span.set_attribute("graphql.operation.type", operation_type)
                span.update_name(f"{operation_type} {name}" if name else operation_type)
            if name:
                span.set_attribute("graphql.operation.name", name)
            query = execution_context.query
            if isinstance(query, str) and query:
                span.set_attribute("graphql.document.hash", "sha256:" + hashlib.sha256(query.encode()).hexdigest())
            errors = execution_context.pre_execution_errors or getattr(execution_context.result, "errors", None)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            elif errors:
                span.set_status(Status(StatusCode.ERROR, "GraphQL errors"))
                span.set_attribute("gqlchannels.graphql.errors", len(errors))
        finally:
            span.end()
            _end_detaching(token)

    def preparing(self) -> Any:
        """A span over parsing and validating a document that was not in the cache."""
        if _unsampled():
            return contextlib.nullcontext()
        return TRACER.start_as_current_span("GraphQL parse and validate", kind=SpanKind.INTERNAL)


def _operation_name(execution_context: Any) -> str | None:
    try:
        name = execution_context.operation_name
    except Exception:  # a document that does not parse
        return None
    return name if isinstance(name, str) else None


def _operation_type(execution_context: Any) -> str | None:
    try:
        return execution_context.operation_type.value  # type: ignore[no-any-return]
    except Exception:  # no document, or no operation in it to run
        return None


# -- messages ------------------------------------------------------------------------------


def messaging_system(layer: Any) -> str:
    """`messaging.system` for a channel layer (looking through a wrapper such as the test
    client's, which keeps the layer it wraps as `.layer`)."""
    from channels.layers import InMemoryChannelLayer

    from ..layers.amqp import RabbitMQChannelLayer
    from ..layers.inprocess import InProcessChannelLayer

    for _ in range(4):  # a wrapper or two at most
        if isinstance(layer, (RabbitMQChannelLayer, InProcessChannelLayer, InMemoryChannelLayer)):
            break
        inner = getattr(layer, "__dict__", {}).get("layer")
        if inner is None:
            return f"channels.{type(layer).__name__}"
        layer = inner
    return "rabbitmq" if isinstance(layer, RabbitMQChannelLayer) else INPROCESS_SYSTEM


def messaging_attributes(layer: Any, group: str | None, operation: str) -> dict[str, Any]:
    system = messaging_system(layer)
    attributes: dict[str, Any] = {
        "messaging.system": system, "messaging.operation.type": operation, "messaging.operation.name": operation,
    }
    if group is not None:
        attributes["messaging.destination.name"] = group
    if system == "rabbitmq":
        where = getattr(getattr(layer, "link", None), "where", None)
        if isinstance(where, str) and ":" in where:
            host, _, port = where.rpartition(":")
            attributes["server.address"] = host
            if port.isdigit():
                attributes["server.port"] = int(port)
        if group is not None:
            attributes["messaging.rabbitmq.destination.routing_key"] = group
    return attributes


class Producer:
    """A PRODUCER span around one publish; the message sent carries its context."""

    def __init__(self, group: str, layer: Any) -> None:
        self.group = group
        self.headers: dict[str, str] = {}
        if _unsampled():
            # No span, but the trace's (unsampled) context still goes along, so that the
            # deliveries are not sampled as traces of their own.
            self.span = None
            propagate.inject(self.headers)
            return
        self.span = TRACER.start_span(f"send {group}", kind=SpanKind.PRODUCER,
                                      attributes=messaging_attributes(layer, group, "send"))
        propagate.inject(self.headers, context=trace.set_span_in_context(self.span))

    def wrap(self, message: dict[str, Any]) -> dict[str, Any]:
        return TracedMessage(message, self.headers, self.group) if self.headers else message

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.span is None:
            return
        if exc is not None:
            self.span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
            self.span.set_attribute("error.type", type(exc).__qualname__)
        self.span.end()


def received(message: dict[str, Any], headers: Mapping[str, Any] | None, group: str | None) -> dict[str, Any]:
    """A message from the broker, with the trace headers it came with (if any) beside it."""
    if not headers:
        return message
    carried = {key: value.decode("latin-1") if isinstance(value, bytes) else value
               for key, value in headers.items() if key in ("traceparent", "tracestate") and isinstance(value, (str, bytes))}
    return TracedMessage(message, carried, group) if carried else message


_PARENTS: dict[tuple[str | None, str | None], Context] = {}
MAX_PARENTS = 64  # one message reaches each of its subscribers within moments


def _parent_of(headers: Mapping[str, str]) -> Context:
    """The publish's context from a message's headers: extracted once per message, not once for
    each of the subscribers it reaches in this process."""
    key = (headers.get("traceparent"), headers.get("tracestate"))
    parent = _PARENTS.get(key)
    if parent is None:
        if len(_PARENTS) >= MAX_PARENTS:
            del _PARENTS[next(iter(_PARENTS))]
        parent = _PARENTS[key] = propagate.extract(headers)
    return parent


async def traced_messages(listener: Any, messages: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """A subscription's messages, each delivered inside a CONSUMER span whose parent is the
    publish that sent it (a root span when the sender did not trace), linked to the span of the
    subscription; the subscription gets the message itself, a plain dict."""
    subscription = trace.get_current_span().get_span_context()
    links = [Link(subscription)] if subscription.is_valid else None
    only_group = listener.groups[0] if len(listener.groups) == 1 else None
    try:
        async for message in messages:
            headers = trace_headers_of(message)
            group = getattr(message, "trace_group", None) or only_group
            parent = _parent_of(headers) if headers else Context()
            if _unsampled(parent):
                yield dict(message) if headers is not None else message
                continue
            span = TRACER.start_span(f"process {group}" if group else "process", context=parent,
                                     kind=SpanKind.CONSUMER, links=links,
                                     attributes=messaging_attributes(listener.layer, group, "process"))
            try:
                yield dict(message) if headers is not None else message
            finally:
                span.end()
    finally:
        await messages.aclose()  # type: ignore[attr-defined]


@contextlib.contextmanager
def job_context(environ: Mapping[str, str] = os.environ) -> Iterator[None]:
    """For `gqlchannels publish`: tracing on with the SDK set up, inside the trace of the job
    that ran the command when it passes one as TRACEPARENT/TRACESTATE; spans exported at the end."""
    from . import enable

    enable(configure_sdk=True, service_name="gqlchannels-publish")
    carrier = {key.lower(): environ[key] for key in ("TRACEPARENT", "TRACESTATE") if environ.get(key)}
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        _end_detaching(token)
        shutdown(5.0)
