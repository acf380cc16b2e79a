"""Build the ASGI application: GraphQL over HTTP and WebSockets, health, metrics, lifespan, 404s."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

import django
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from .auth import AuthHook, load_auth_hook
from .connections import WebSocketTracker
from .consumers import consumer_classes
from .django_setup import configure_django, django_is_configured
from .errors import ConfigError
from .extension import with_server_extensions
from .health import healthz_app, readyz_app
from .ide import asset_routes, graphiql_html
from .importer import import_schema
from .layers import parse_layer_url
from .lifecycle import Lifespan, ServerState
from .limits import BodyLimit, Limits
from .negotiation import GraphQLResponseNegotiation
from .metrics import HTTPMetrics, metrics_app, websocket_count_changed
from .routing import ASGIApp, PathRouter, ProtocolRouter
from .settings import Settings
from .sse import SSETransport

SUBSCRIPTION_PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL)


def build_application(
    schema: BaseSchema,
    *,
    path: str = "/graphql",
    layer: str | None = None,
    graphql_ide: bool = True,
    allowed_origins: Sequence[str] = (),
    limits: Limits = Limits(),
    introspection: bool = True,
    debug: bool = False,
    auth: str | AuthHook | None = None,
    sse: bool = False,
) -> ProtocolRouter:
    """The ASGI app that serves `schema`: mount it, or hand it to any ASGI server.

    Django is configured here if nothing configured it yet, with the channel layer from
    `layer` (a URL such as "memory://" or "amqp://..."; default $GQLCHANNELS_LAYER_URL,
    else memory://). Inside an existing Django project its CHANNEL_LAYERS is used instead.
    `auth` is a callable (or 'module:attribute') given a gqlchannels.auth.AuthRequest;
    `debug` shows unexpected errors' messages to clients instead of masking them; `sse`
    turns on subscriptions over server-sent events (graphql-sse, distinct connections).
    """
    if not django_is_configured():
        configure_django(parse_layer_url(layer or os.environ.get("GQLCHANNELS_LAYER_URL", "memory://")))
    elif layer is not None:
        raise ConfigError(
            "Django is already configured, so its CHANNEL_LAYERS setting chooses the layer; "
            "drop the layer= argument or set CHANNEL_LAYERS in your Django settings."
        )
    else:
        django.setup(set_prefix=False)  # idempotent; populates apps if the user has not yet

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
        ),
        on_change=websocket_count_changed,
    )
    http_routes: dict[str, ASGIApp] = {
        graphql_path: HTTPMetrics(GraphQLResponseNegotiation(BodyLimit(
            SSETransport(
                http_consumer.as_asgi(
                    schema=served,
                    graphql_ide="graphiql" if graphql_ide else None,
                    subscription_protocols=SUBSCRIPTION_PROTOCOLS,
                    auth_hook=auth_hook,
                    ide_html=graphiql_html(graphql_path),
                ),
                served, enabled=sse, layer=get_channel_layer, auth_hook=auth_hook,
            ),
            limits.max_body_size,
        ))),
        "/healthz": healthz_app(state),
        "/readyz": readyz_app(state),
        "/metrics": metrics_app(),
        **(asset_routes(graphql_path) if graphql_ide else {}),
    }
    hint = f"GraphQL is served at {graphql_path}"
    return ProtocolRouter(
        {
            "http": PathRouter(http_routes, hint),
            "websocket": PathRouter({graphql_path: websockets}, hint),
            "lifespan": Lifespan(state, websockets),
        }
    )


def create_app() -> ProtocolRouter:
    """uvicorn's app factory: each worker process builds its own app from the settings
    the CLI exported, configures Django itself and later creates its layer in its loop."""
    settings = Settings.from_environment()
    configure_django(settings.layer)
    schema = import_schema(settings.app, settings.app_dir)
    return build_application(
        schema,
        path=settings.path,
        graphql_ide=settings.graphql_ide,
        allowed_origins=settings.allowed_origins,
        limits=settings.limits,
        introspection=settings.introspection,
        debug=settings.debug,
        auth=settings.auth,
        sse=settings.sse,
    )
