"""Build the ASGI application: GraphQL over HTTP and WebSockets, health, lifespan, 404s."""

from __future__ import annotations

import os
from collections.abc import Sequence

import django
from channels.routing import ProtocolTypeRouter
from django.conf import settings as django_settings
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from .consumers import consumer_classes
from .django_setup import configure_django, django_is_configured
from .errors import ConfigError
from .health import healthz_app, readyz_app
from .importer import import_schema
from .layers import parse_layer_url
from .lifecycle import Lifespan, ServerState
from .routing import ASGIApp, PathRouter
from .settings import Settings

SUBSCRIPTION_PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL)


def build_application(
    schema: BaseSchema,
    *,
    path: str = "/graphql",
    layer: str | None = None,
    graphql_ide: bool = True,
    allowed_origins: Sequence[str] = (),
) -> ProtocolTypeRouter:
    """The ASGI app that serves `schema`: mount it, or hand it to any ASGI server.

    Django is configured here if nothing configured it yet, with the channel layer from
    `layer` (a URL such as "memory://" or "amqp://..."; default $GQLCHANNELS_LAYER_URL,
    else memory://). Inside an existing Django project its CHANNEL_LAYERS is used instead.
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

    http_consumer, ws_consumer = consumer_classes(has_database=bool(django_settings.DATABASES))
    graphql_path = path.rstrip("/") or "/"
    state = ServerState()
    http_routes: dict[str, ASGIApp] = {
        graphql_path: http_consumer.as_asgi(
            schema=schema,
            graphql_ide="graphiql" if graphql_ide else None,
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
        ),
        "/healthz": healthz_app(state),
        "/readyz": readyz_app(state),
    }
    ws_routes: dict[str, ASGIApp] = {
        graphql_path: ws_consumer.as_asgi(
            schema=schema,
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
            allowed_origins=tuple(allowed_origins),
        ),
    }
    hint = f"GraphQL is served at {graphql_path}"
    return ProtocolTypeRouter(
        {
            "http": PathRouter(http_routes, hint),
            "websocket": PathRouter(ws_routes, hint),
            "lifespan": Lifespan(state),
        }
    )


def create_app() -> ProtocolTypeRouter:
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
    )
