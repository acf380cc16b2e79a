"""The `gqlchannels` command: serve, check, export-schema, publish.

Every option also reads a GQLCHANNELS_* environment variable; a flag on the command line
wins over the variable, and --help names the variables. Library code raises
GqlchannelsError; this module alone turns it into a one-line message and exit status 1
(with the traceback only at --log-level debug). A message about a value that came from the
environment names the variable, not only the flag the user never typed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import telemetry
from ..config.layer_url import mask_url, parse_layer_url
from ..config.settings import LOG_FORMATS, LOG_LEVELS, Settings, default
from ..errors import ConfigError, GqlchannelsError, traceback_hint
from .checks import ensure_port_free
from .environment import CommandGroup, name_environment_sources

F = TypeVar("F", bound=Callable[..., Any])

app_argument = click.argument("app", envvar="GQLCHANNELS_APP")
app_dir_option = click.option(
    "--app-dir", envvar="GQLCHANNELS_APP_DIR", default=".", show_default=True,
    help="Directory put first on sys.path before importing APP.",
)
layer_option = click.option(
    "--layer", "layer_url", envvar="GQLCHANNELS_LAYER_URL", default="memory://", show_default=True,
    help="Channel layer URL: memory:// or amqp://user:password@host:5672/vhost (amqps:// for TLS).",
)
otel_option = click.option(
    "--otel/--no-otel", envvar="GQLCHANNELS_OTEL", default=None,
    help="Trace with OpenTelemetry (needs gqlchannels[otel]). Default: on when OTEL_TRACES_EXPORTER "
         "(other than none) or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set.",
)
log_level_option = click.option(
    "--log-level", envvar="GQLCHANNELS_LOG_LEVEL", default="info", show_default=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
)


def reports_errors(command: F) -> F:
    """Turn GqlchannelsError into 'Error: ...' and exit 1; a traceback only when debugging."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GqlchannelsError as exc:
            debugging = str(kwargs.get("log_level", "")).lower() in ("debug", "trace")
            if debugging:
                logging.getLogger("gqlchannels").exception("failed")
            message = name_environment_sources(str(exc), click.get_current_context())
            click.echo(f"Error: {message}{traceback_hint(exc, showing_tracebacks=debugging)}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def split_origins(values: tuple[str, ...]) -> tuple[str, ...]:
    """--allowed-origins may be repeated and each value may be comma-separated."""
    return tuple(origin.strip() for value in values for origin in value.split(",") if origin.strip())


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gqlchannels")
def main() -> None:
    """A GraphQL server for Strawberry schemas, with subscriptions over Django Channels."""


@main.command()
@app_argument
@click.option("--host", envvar="GQLCHANNELS_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="GQLCHANNELS_PORT", default=8000, show_default=True, type=int)
@click.option("--path", envvar="GQLCHANNELS_PATH", default="/graphql", show_default=True,
              help="Where GraphQL is served, over HTTP and WebSocket.")
@layer_option
@click.option("--workers", envvar=["GQLCHANNELS_WORKERS", "WEB_CONCURRENCY"], default=1,
              show_default=True, type=int, help="Worker processes (more than 1 needs amqp://).")
@app_dir_option
@click.option("--reload", envvar="GQLCHANNELS_RELOAD", is_flag=True, default=False,
              help="Restart when code changes (development).")
@log_level_option
@click.option("--graphql-ide/--no-graphql-ide", envvar="GQLCHANNELS_GRAPHQL_IDE", default=True,
              show_default=True, help="Serve the GraphiQL IDE to browsers at the GraphQL path.")
@click.option("--allowed-origins", envvar="GQLCHANNELS_ALLOWED_ORIGINS", multiple=True,
              help="Origins allowed to open WebSockets (comma-separated or repeated). "
                   "Default: the Origin must match the Host.")
@click.option("--log-format", envvar="GQLCHANNELS_LOG_FORMAT", default="text", show_default=True,
              type=click.Choice(LOG_FORMATS, case_sensitive=False), help="One line per event, as text or JSON.")
@click.option("--debug/--no-debug", envvar="GQLCHANNELS_DEBUG", default=False, show_default=True,
              help="Show unexpected errors' messages to clients (masked by default).")
@click.option("--introspection/--no-introspection", envvar="GQLCHANNELS_INTROSPECTION", default=True,
              show_default=True, help="Answer schema introspection queries.")
@click.option("--auth", envvar="GQLCHANNELS_AUTH", default=None,
              help="'module:callable' given each request's headers (and WebSocket connection_init "
                   "payload); returns the user or raises gqlchannels.Unauthorized.")
@click.option("--sse/--no-sse", envvar="GQLCHANNELS_SSE", default=False, show_default=True,
              help="Also serve subscriptions over server-sent events (graphql-sse protocol).")
@click.option("--fast-paths/--no-fast-paths", envvar="GQLCHANNELS_FAST_PATHS", default=True, show_default=True,
              help="Serve through gqlchannels' faster replacements of some of Strawberry's, graphql-core's, "
                   "uvicorn's and Channels' internals; off: through their own code.")
@click.option("--shutdown-timeout", envvar="GQLCHANNELS_SHUTDOWN_TIMEOUT", default=default("shutdown_timeout"), show_default=True,
              type=float, help="Seconds in-flight requests get to finish after SIGTERM.")
@click.option("--forwarded-allow-ips", envvar="GQLCHANNELS_FORWARDED_ALLOW_IPS", default=default("forwarded_allow_ips"),
              show_default=True, help="Proxies whose X-Forwarded-For/-Proto headers are trusted ('*' for any).")
@click.option("--ws-ping-interval", envvar="GQLCHANNELS_WS_PING_INTERVAL", default=default("ws_ping_interval"), show_default=True,
              type=float, help="Seconds between WebSocket pings that keep idle connections open (0: off).")
@click.option("--ws-compression/--no-ws-compression", envvar="GQLCHANNELS_WS_COMPRESSION", default=False,
              show_default=True, help="Accept permessage-deflate: smaller frames for about 41 KB more memory "
                                      "per connection and CPU per message per subscriber.")
@click.option("--max-ws-message-size", envvar="GQLCHANNELS_MAX_WS_MESSAGE_SIZE", default=default("max_ws_message_size"),
              show_default=True, type=int, help="Largest WebSocket message in bytes (over it: close 1009).")
@click.option("--max-body-size", envvar="GQLCHANNELS_MAX_BODY_SIZE", default=default("max_body_size"), show_default=True,
              type=int, help="Largest HTTP request body in bytes (over it: 413).")
@click.option("--max-depth", envvar="GQLCHANNELS_MAX_DEPTH", default=default("max_depth"), show_default=True, type=int,
              help="Deepest query nesting allowed.")
@click.option("--max-tokens", envvar="GQLCHANNELS_MAX_TOKENS", default=default("max_tokens"), show_default=True, type=int,
              help="Most tokens allowed in one GraphQL document.")
@click.option("--max-aliases", envvar="GQLCHANNELS_MAX_ALIASES", default=default("max_aliases"), show_default=True, type=int,
              help="Most aliases allowed in one GraphQL document.")
@click.option("--max-selection-fields", envvar="GQLCHANNELS_MAX_SELECTION_FIELDS", default=default("max_selection_fields"),
              show_default=True, type=int,
              help="Most fields (and fragment spreads) in one selection set, its inline fragments' included.")
@click.option("--max-subscriptions", envvar="GQLCHANNELS_MAX_SUBSCRIPTIONS", default=default("max_subscriptions"), show_default=True,
              type=int, help="Most operations running at once on one WebSocket.")
@click.option("--connection-init-timeout", envvar="GQLCHANNELS_CONNECTION_INIT_TIMEOUT", default=default("connection_init_timeout"),
              show_default=True, type=float,
              help="Seconds a WebSocket may wait before sending connection_init (then 4408).")
@click.option("--header-timeout", envvar="GQLCHANNELS_HEADER_TIMEOUT", default=default("header_timeout"),
              show_default=True, type=float,
              help="Seconds a client has to send a complete request head (then 408 and closed).")
@click.option("--body-timeout", envvar="GQLCHANNELS_BODY_TIMEOUT", default=default("body_timeout"),
              show_default=True, type=float,
              help="Seconds a client has to send a request's whole body once its head is in (then 408 and closed).")
@click.option("--max-connections", envvar="GQLCHANNELS_MAX_CONNECTIONS", default=None, type=int,
              help="Open connections per worker; over it HTTP gets 503, WebSockets close 1013. "
                   "Default: the open-file limit (ulimit -n) less 10%, at least 64 less.")
@otel_option
@click.option("--apq/--no-apq", envvar="GQLCHANNELS_APQ", default=True, show_default=True,
              help="Answer Apollo's automatic persisted queries (a document's hash instead of its text).")
@click.option("--persisted-operations", envvar="GQLCHANNELS_PERSISTED_OPERATIONS", default=None, metavar="PATH",
              help="A manifest of trusted documents (Apollo's persisted query manifest, or a JSON map of "
                   "id to document) that clients may name by id.")
@click.option("--only-persisted", envvar="GQLCHANNELS_ONLY_PERSISTED", is_flag=True, default=False,
              help="Run only the documents of --persisted-operations; refuse any other.")
@reports_errors
def serve(app: str, allowed_origins: tuple[str, ...], log_level: str, otel: bool | None, **options: Any) -> None:
    """Serve the Strawberry schema APP ('package.module:attribute')."""
    from ..server.run import serve as run_server

    settings = Settings(
        app=app, allowed_origins=split_origins(allowed_origins), log_level=log_level.lower(),
        otel=_resolve_otel(otel), **options
    )
    notes = []
    if otel is None and not settings.otel and telemetry.environment_asks():
        notes.append("OTEL_* variables ask for traces, but OpenTelemetry is not installed: tracing is off "
                     "(pip install 'gqlchannels[otel]', or --no-otel to say so).")
    if settings.persisted_operations:
        from ..graphql.persisted import load_manifest

        load_manifest(settings.persisted_operations)  # a bad manifest: one line naming it, before any worker starts
    ensure_port_free(settings.host, settings.port)
    # Import once here so a wrong APP (or --auth) fails now, with one line, before any worker starts.
    _configure_and_import(settings.app, settings.app_dir, settings.layer_url)
    if settings.auth:
        from ..auth import load_auth_hook

        load_auth_hook(settings.auth)
    run_server(settings, notes=notes)


@main.command()
@app_argument
@layer_option
@app_dir_option
@log_level_option
@click.option("--timeout", default=5.0, show_default=True, type=float,
              help="Seconds to wait for the channel layer.")
@reports_errors
def check(app: str, layer_url: str, app_dir: str, log_level: str, timeout: float) -> None:
    """Import APP, send a message through the channel layer, print a summary.

    Exits 1 with a one-line reason when anything is wrong: for CI and deploy pipelines.
    """
    from .checks import describe_schema, layer_round_trip

    if log_level.lower() not in ("debug", "trace"):
        # check prints its own one-line verdict; the layer's retry chatter while the broker
        # is unreachable would bury it. --log-level debug shows everything.
        logging.disable(logging.CRITICAL)
    schema = _configure_and_import(app, app_dir, layer_url)
    click.echo(f"schema  {app}: {describe_schema(schema)}")
    seconds = asyncio.run(layer_round_trip(timeout))
    click.echo(f"layer   {mask_url(layer_url)}: a message went round in {seconds * 1000:.0f} ms")
    click.echo("ok")


@main.command()
@click.argument("group")
@click.argument("payload", required=False)
@click.option("--type", "message_type", help="The message's type, e.g. chat.message "
              "(may instead be a \"type\" key in PAYLOAD).")
@layer_option
@click.option("--timeout", default=5.0, show_default=True, type=float,
              help="Seconds to wait for the broker before failing.")
@log_level_option
@otel_option
@reports_errors
def publish(group: str, payload: str | None, message_type: str | None, layer_url: str,
            timeout: float, log_level: str, otel: bool | None) -> None:
    """Send one message to GROUP: PAYLOAD is a JSON object (from stdin when omitted or '-').

    Every subscriber of GROUP on every server sharing the broker receives it, e.g.
    gqlchannels publish chat-room-lobby '{"room_id": "lobby", "message": "hi"}' --type chat.message
    """
    from ..events.publish import publish as publish_message

    if log_level.lower() not in ("debug", "trace"):
        logging.disable(logging.CRITICAL)  # the outcome is the exit status and one line
    message = parse_payload(payload, message_type)
    if not _resolve_otel(otel):
        publish_message(group, message, layer_url=layer_url, timeout=timeout)
    else:
        from ..telemetry import otel as tracing

        # A job that traces passes its context as TRACEPARENT (OpenTelemetry's carrier for
        # child processes); the publish's span joins that trace.
        with tracing.job_context():
            publish_message(group, message, layer_url=layer_url, timeout=timeout)
    click.echo(f"published {message['type']} to {group}")


def _resolve_otel(flag: bool | None) -> bool:
    """Tracing on or off: --otel/--no-otel, else the OTEL_* variables (ConfigError for --otel
    without the extra); when on, the exporter the variables name is checked now."""
    from .. import telemetry

    wanted = telemetry.resolve(flag)
    if wanted:
        from ..telemetry import otel

        otel.exporters_from_environment()  # a wrong exporter or protocol: one line now, not in each worker
    return wanted


def parse_payload(payload: str | None, message_type: str | None) -> dict[str, Any]:
    """The JSON object from the argument or stdin, with its type set; ConfigError if unusable."""
    if payload is None or payload == "-":
        payload = "" if payload is None and sys.stdin.isatty() else sys.stdin.read()
    try:
        message = json.loads(payload) if payload.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"PAYLOAD is not valid JSON ({exc}): {payload[:80]!r}") from None
    if not isinstance(message, dict):
        raise ConfigError(f"PAYLOAD must be a JSON object, not {type(message).__name__}: {payload[:80]!r}")
    if message_type is not None:
        message["type"] = message_type
    if not isinstance(message.get("type"), str) or not message["type"]:
        raise ConfigError('give the message a type: --type chat.message, or a "type" key in PAYLOAD.')
    return message


@main.command("export-schema")
@app_argument
@app_dir_option
@log_level_option
@reports_errors
def export_schema(app: str, app_dir: str, log_level: str) -> None:
    """Print the schema of APP in GraphQL SDL."""
    schema = _configure_and_import(app, app_dir, "memory://")
    click.echo(schema.as_str())


def _configure_and_import(app: str, app_dir: str, layer_url: str) -> Any:
    from ..config.django import configure_django
    from ..config.importing import import_schema

    # Django first: a schema may import Django models or settings at module level.
    configure_django(parse_layer_url(layer_url))
    return import_schema(app, app_dir)
