"""Test a schema the way it is served, in process: no server process, no sockets, no broker.

    from gqlchannels.testing import GraphQLTestClient

    async with GraphQLTestClient(schema, auth="myapp.auth:authenticate") as client:
        result = await client.execute("{ hello }")
        async with client.subscribe("subscription { ... }", connection_params={...}) as stream:
            await client.publish("some-group", {"type": "some.event", ...})
            result = await stream.next()

With pytest, the `gqlchannels_client` fixture (gqlchannels' pytest plugin, loaded by pytest
itself) makes these clients; `app_fixture` names the schema they serve in one conftest.py line.
Needs httpx: pip install 'gqlchannels[testing]'.
"""

from .client import GraphQLTestClient, HTTPResult, in_process_layer
from .errors import (
    ConnectionClosed,
    ConnectionRefused,
    GraphQLTestClientError,
    RequestTimeout,
    StartupFailed,
    SubscriptionEnded,
    SubscriptionTimeout,
)
from .fixtures import AppSpec, app_fixture
from .subscriptions import Result, SubscriptionStream

__all__ = [
    "AppSpec",
    "ConnectionClosed",
    "ConnectionRefused",
    "GraphQLTestClient",
    "GraphQLTestClientError",
    "HTTPResult",
    "RequestTimeout",
    "Result",
    "StartupFailed",
    "SubscriptionEnded",
    "SubscriptionStream",
    "SubscriptionTimeout",
    "app_fixture",
    "in_process_layer",
]
