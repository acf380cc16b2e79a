"""OpenTelemetry tracing: the small hooks the rest of gqlchannels calls.

Everything that imports `opentelemetry` is in `telemetry/otel.py`, imported only once tracing
is turned on (`gqlchannels[otel]`, then `--otel` or the standard OTEL_* variables). Off, each
hook is one attribute read: an HTTP route is not wrapped, a subscription reads its messages
through the plain generator, and no opentelemetry module is ever imported.

The trace context travels with a message as a `TracedMessage`: a dict equal to the message,
holding the W3C `traceparent`/`tracestate` beside it, never inside it. The RabbitMQ layer
sends those as AMQP headers (the body stays channels-rabbitmq's msgpack, byte for byte), the
in-process layer hands the message itself to every receiver (Channels' own deep-copies it, slots
included), and the subscriber receives a plain dict again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..asgi.routing import ASGIApp
    from . import otel as _otel

OTEL_ENV = "GQLCHANNELS_OTEL"
EXTRA_MISSING = (
    "tracing needs OpenTelemetry, which is not installed: pip install 'gqlchannels[otel]' "
    "(or serve without --otel)."
)


class _Tracing:
    """Process-wide: tracing is on (`otel` is the instrumentation module), off, or, in a
    process that is not a server (a script calling gqlchannels.publish), undecided: then a
    publish joins the caller's trace if the caller has imported OpenTelemetry itself."""

    __slots__ = ("on", "decided", "otel")

    def __init__(self) -> None:
        self.on = False
        self.decided = False
        self.otel: Any = None


TRACING = _Tracing()


class TracedMessage(dict):  # type: ignore[type-arg]
    """A message with the trace context of its publish beside it (not in it): equal to the
    message, encoded like it, and copied with it (by Channels' in-memory layer, which deep-copies)."""

    __slots__ = ("trace_headers", "trace_group")

    def __init__(self, message: Mapping[str, Any], headers: dict[str, str], group: str | None) -> None:
        super().__init__(message)
        self.trace_headers = headers
        self.trace_group = group


def trace_headers_of(message: Any) -> dict[str, str] | None:
    """The W3C trace headers a message carries beside it, if any."""
    return getattr(message, "trace_headers", None) if type(message) is TracedMessage else None


def environment_asks(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether OpenTelemetry's standard variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())


def available() -> bool:
    """Whether the otel extra's packages are installed (looked up, not imported)."""
    import importlib.metadata

    for name in ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"):
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


def resolve(flag: bool | None, environ: Mapping[str, str] = os.environ) -> bool:
    """Tracing on or off: `--otel/--no-otel` when given, else what OTEL_* asks. ConfigError when
    --otel asks and the extra is missing; when only the environment asks, tracing stays off
    (the caller logs why), since those variables may be meant for other programs."""
    if flag is False:
        return False
    if flag is None and not environment_asks(environ):
        return False
    if not available():
        if flag:
            raise ConfigError(EXTRA_MISSING)
        return False
    return True


def enable(*, configure_sdk: bool = True, service_name: str = "gqlchannels") -> None:
    """Turn tracing on in this process; with `configure_sdk`, set up OpenTelemetry's SDK from
    the standard variables unless the process already has a tracer provider of its own."""
    try:
        from . import otel
    except ImportError as exc:
        raise ConfigError(f"{EXTRA_MISSING} ({exc})") from None
    if configure_sdk:
        otel.configure_sdk(service_name)
    TRACING.otel, TRACING.on, TRACING.decided = otel, True, True


def disable() -> None:
    """Tracing off in this process (a server decided so): not even a caller's own trace is joined."""
    TRACING.on, TRACING.decided = False, True


def shutdown(timeout: float = 3.0) -> None:
    """Export what is left (the end of a worker, of `gqlchannels publish`)."""
    if TRACING.otel is not None:
        TRACING.otel.shutdown(timeout)


def _instrumentation() -> _otel | None:
    if TRACING.on:
        return TRACING.otel  # type: ignore[no-any-return]
    if TRACING.decided or "opentelemetry.trace" not in sys.modules:
        return None
    # Not a server, and the caller uses OpenTelemetry: join its trace, with its provider.
    from . import otel

    TRACING.otel = otel
    return otel


# -- hooks ---------------------------------------------------------------------------------


def http_route(app: ASGIApp, route: str) -> ASGIApp:
    """`app`, with a server span per HTTP request when tracing is on (decided when the app is built)."""
    return TRACING.otel.HTTPServerSpans(app, route) if TRACING.on else app


def by_sampling(sampled: ASGIApp, unsampled: ASGIApp) -> ASGIApp:
    """Inside `http_route`: a request whose trace is sampled to `sampled`, the others to
    `unsampled` (tracing must be on)."""
    return TRACING.otel.BySampling(sampled, unsampled)  # type: ignore[no-any-return]


def producer(group: str, layer: Any) -> Any:
    """A PRODUCER span for a publish to `group` through `layer`, or None when not tracing.
    Use `with producer:` around the send, sending `producer.wrap(message)`."""
    otel = _instrumentation()
    return None if otel is None else otel.Producer(group, layer)


def operation_tracer() -> Any:
    """What the schema extension starts GraphQL operation spans with, or None when off."""
    return TRACING.otel.OperationSpans() if TRACING.on else None
