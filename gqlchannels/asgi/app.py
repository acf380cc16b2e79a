"""Build the ASGI application: GraphQL over HTTP and WebSockets, health, metrics, lifespan, 404s."""

from __future__ import annotations

import datetime
import functools
import gc
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import django
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings as django_settings
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from .. import overrides, telemetry
from ..auth import AuthHook, load_auth_hook
from ..config.django import configure_django, django_is_configured, ensure_channel_layer, layer_url_or_default
from ..config.importing import import_schema
from ..config.layer_aliases import register_app_layer
from ..config.layer_url import parse_layer_url
from ..config.limits import Limits
from ..config.settings import SETTINGS_ENV, Settings
from ..errors import GqlchannelsError, traceback_hint
from ..graphql.consumers import consumer_classes
from ..graphql.extension import parse_document, server_policy, with_server_extensions
from ..graphql.persisted import Manifest, persisted_operations_for
from ..metrics import metrics_app, websocket_count_changed
from ..server.health import healthz_app, readyz_app
from ..server.lifespan import Lifespan, ServerState
from .graphql_http import GraphQLHTTP, GraphQLRouteFirst, lean_refusal
from .ide import asset_routes, graphiql_html
from .middleware import AnswerCutRequests, BodyLimit, HTTPMetrics
from .negotiation import GraphQLResponseNegotiation
from .routing import ASGIApp, PathRouter, ProtocolRouter
from .sse import SSETransport
from .websockets import WebSocketTracker

SUBSCRIPTION_PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL)

logger = logging.getLogger("gqlchannels")


def build_application(
    schema: BaseSchema,
    *,
    path: str = "/graphql",
    layer: str | BaseChannelLayer | None = None,
    graphql_ide: bool = True,
    allowed_origins: Sequence[str] = (),
    limits: Limits = Limits(),
    introspection: bool = True,
    debug: bool = False,
    auth: str | AuthHook | None = None,
    sse: bool = False,
    fast_paths: bool | None = None,
    otel: bool | None = None,
    apq: bool = True,
    persisted_operations: str | os.PathLike[str] | Mapping[str, Any] | Manifest | None = None,
    only_persisted: bool = False,
) -> ProtocolRouter:
    """The ASGI app that serves `schema`: mount it, or hand it to any ASGI server.

    Django is configured here if nothing configured it yet, with the channel layer from
    `layer` (a URL such as "memory://" or "amqp://..."; default $GQLCHANNELS_LAYER_URL,
    else memory://). Inside an existing Django project its CHANNEL_LAYERS is used instead;
    a project without CHANNEL_LAYERS gets the layer from `layer` (or the same defaults).
    `layer` may also be a channel layer instance: this app's own, used by it alone (Django's
    CHANNEL_LAYERS is neither read nor changed), and closed by its lifespan at shutdown.
    `auth` is a callable (or 'module:attribute') given a gqlchannels.auth.AuthRequest;
    `debug` shows unexpected errors' messages to clients instead of masking them; `sse`
    turns on subscriptions over server-sent events (graphql-sse, distinct connections);
    `fast_paths=False` serves through the dependencies' own code where gqlchannels would
    replace their internals (default: $GQLCHANNELS_FAST_PATHS, else on; process-wide).
    `otel=True` traces with OpenTelemetry (the `gqlchannels[otel]` extra; the SDK is set up
    from the OTEL_* variables unless the process has a tracer provider already), `False`
    turns tracing off; None leaves it as this process has it (process-wide).
    `apq` answers Apollo's automatic persisted queries; `persisted_operations` is a manifest of
    trusted documents (a file's path, or its JSON value), and `only_persisted` refuses every
    document that is not in it.
    """
    if fast_paths is not None:
        overrides.configure(fast_paths=fast_paths)
    if otel:
        telemetry.enable()
    elif otel is not None:
        telemetry.disable()
    if SETTINGS_ENV not in os.environ:  # not a worker of `gqlchannels serve`, which said it once
        overrides.log_startup()
    own_layer = None if layer is None or isinstance(layer, str) else layer
    layer_url = None if own_layer is not None else layer
    if not django_is_configured():
        configure_django(parse_layer_url(layer_url_or_default(layer_url)))
    else:
        django.setup(set_prefix=False)  # idempotent; populates apps if the user has not yet
        if own_layer is None:
            ensure_channel_layer(layer_url)
    layer_alias = DEFAULT_CHANNEL_LAYER if own_layer is None else register_app_layer(own_layer)

    persisted = persisted_operations_for(apq=apq, manifest=persisted_operations, only_persisted=only_persisted)
    served = with_server_extensions(schema, limits, introspection=introspection, debug=debug)
    http_consumer, ws_consumer = consumer_classes(has_database=bool(django_settings.DATABASES))
    auth_hook = load_auth_hook(auth)
    graphql_path = path.rstrip("/") or "/"
    state = ServerState()
    websockets = WebSocketTracker(
        ws_consumer.as_asgi(
            schema=served,
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
            allowed_origins=tuple(allowed_origins),
            max_subscriptions_per_connection=limits.max_subscriptions,
            connection_init_wait_timeout=datetime.timedelta(seconds=limits.connection_init_timeout),
            auth_hook=auth_hook,
            channel_layer_alias=layer_alias,
            persisted=persisted,
        ),
        on_change=websocket_count_changed,
    )
    sse_transport = SSETransport(
        http_consumer.as_asgi(
            schema=served,
            graphql_ide="graphiql",  # the consumer decides, from ide_html
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
            auth_hook=auth_hook,
            ide_html=graphiql_html(graphql_path) if graphql_ide else None,
            channel_layer_alias=layer_alias,
            persisted=persisted,
        ),
        served, enabled=sse, layer=functools.partial(get_channel_layer, layer_alias), auth_hook=auth_hook,
        parse_document=functools.partial(parse_document, max_tokens=limits.max_tokens),
        persisted=persisted,
    )
    other_routes: dict[str, ASGIApp] = {
        "/healthz": healthz_app(state),
        "/readyz": readyz_app(state),
        "/metrics": metrics_app(),
        **(asset_routes(graphql_path) if graphql_ide else {}),
    }
    hint = f"GraphQL is served at {graphql_path}"
    refusal = lean_refusal(served, schema)
    full_route = HTTPMetrics(GraphQLResponseNegotiation(
        BodyLimit(sse_transport, limits.max_body_size, limits.body_timeout)))
    http: ASGIApp
    if refusal is None:
        # Queries and mutations by the lean handler; the rest by the full route, as below.
        lean = GraphQLHTTP(GraphQLResponseNegotiation(sse_transport), served, server_policy(served),
                           max_body_size=limits.max_body_size, body_timeout=limits.body_timeout, sse=sse,
                           auth_hook=auth_hook,
                           layer=functools.partial(get_channel_layer, layer_alias), persisted=persisted,
                           stopping=lambda: state.stopping)
        graphql: ASGIApp = lean
        if telemetry.TRACING.on:
            # A sampled request by the full route, whose schema extension makes the operation's
            # spans; the others (99% at 1% sampling) by the lean handler, which makes none.
            graphql = telemetry.http_route(
                telemetry.by_sampling(AnswerCutRequests(full_route, state), lean), graphql_path)
        http = GraphQLRouteFirst(graphql_path, graphql, AnswerCutRequests(PathRouter(other_routes, hint), state))
    else:
        logger.debug("GraphQL over HTTP through the full route: %s", refusal)
        other_routes[graphql_path] = telemetry.http_route(full_route, graphql_path)
        http = AnswerCutRequests(PathRouter(other_routes, hint), state)
    return ProtocolRouter(
        {
            "http": http,
            "websocket": PathRouter({graphql_path: websockets}, hint),
            "lifespan": Lifespan(state, websockets, layer_alias),
        }
    )


def create_app() -> ProtocolRouter:
    """uvicorn's app factory: each worker process builds its own app from the settings
    the CLI exported, configures Django itself and later creates its layer in its loop."""
    settings = Settings.from_environment()
    try:
        configure_django(settings.layer)
        schema = import_schema(settings.app, settings.app_dir)
        app = build_application(
            schema,
            path=settings.path,
            graphql_ide=settings.graphql_ide,
            allowed_origins=settings.allowed_origins,
            limits=settings.limits,
            introspection=settings.introspection,
            debug=settings.debug,
            auth=settings.auth,
            sse=settings.sse,
            fast_paths=settings.fast_paths,
            otel=settings.otel,
            apq=settings.apq,
            persisted_operations=settings.persisted_operations,
            only_persisted=settings.only_persisted,
        )
    except GqlchannelsError as exc:
        # The CLI checked all this before starting, so this is a worker (or --reload's child,
        # after an edit broke the module). Raised, it would print a double traceback of 50
        # lines from inside multiprocessing; one line, then exit as uvicorn does for an app it
        # cannot load. The reloader starts a new child on the next change.
        debugging = settings.log_level in ("debug", "trace")
        waiting = " Waiting for a change to reload." if settings.reload else ""
        logger.error("could not load %s: %s%s%s", settings.app, exc,
                     traceback_hint(exc, showing_tracebacks=debugging), waiting, exc_info=debugging)
        sys.exit(1)
    # This process serves, so it may tune the interpreter for latency. What it has built by
    # now (modules, Django, the schema) lives as long as it does: out of the cycle collector's
    # way, whose full collections would otherwise walk it all again, holding the GIL. And the
    # thread that validates large documents (gqlchannels.graphql.documents) hands the GIL back to the
    # event loop every millisecond instead of every 5: with four clients sending hostile
    # documents, other requests' p99 went from about 70 to 40 ms here. Without such a thread
    # at work, nothing changes.
    gc.freeze()
    sys.setswitchinterval(0.001)
    return app
