"""gqlchannels' pytest plugin: the `gqlchannels_client` fixture (gqlchannels.testing).

pytest loads it by itself wherever gqlchannels is installed (the `pytest11` entry point
"gqlchannels"; `-p no:gqlchannels` turns it off). It is a module of its own, outside the
gqlchannels package, because pytest imports every plugin when it starts: importing
gqlchannels (Django, Channels, Strawberry) takes about half a second, which every test run
would pay, GraphQL or not. gqlchannels is imported when a test first asks for a client.

The fixtures are synchronous and hand out async context managers, so they work the same
under pytest-asyncio's auto and strict modes (and anyio's plugin), whatever the loop scope:
the client runs in the loop of the test that enters it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

    from gqlchannels.testing import AppSpec, GraphQLTestClient


class ClientFactory(Protocol):
    def __call__(self, schema: BaseSchema | str | None = None, /, **options: Any) -> GraphQLTestClient: ...


@pytest.fixture
def gqlchannels_app() -> AppSpec:
    """The schema (and options) `gqlchannels_client()` serves when given no schema. Name yours
    in conftest.py: `gqlchannels_app = gqlchannels.testing.app_fixture("myapp.schema:schema")`."""
    pytest.fail(
        "gqlchannels_client() was called without a schema, and no gqlchannels_app fixture names one: "
        "pass it, gqlchannels_client(schema), or add this line to conftest.py: "
        'gqlchannels_app = gqlchannels.testing.app_fixture("myapp.schema:schema")',
        pytrace=False,
    )


@pytest.fixture
def gqlchannels_client(request: pytest.FixtureRequest) -> ClientFactory:
    """Make a GraphQLTestClient: `async with gqlchannels_client() as client:` serves the
    `gqlchannels_app` fixture's schema with its options (those given here win);
    `gqlchannels_client(schema, **options)` serves another."""
    from gqlchannels.testing import GraphQLTestClient

    def make(schema: BaseSchema | str | None = None, /, **options: Any) -> GraphQLTestClient:
        if schema is not None:
            return GraphQLTestClient(schema, **options)
        app: AppSpec = request.getfixturevalue("gqlchannels_app")
        return GraphQLTestClient(app.schema, **{**app.options, **options})

    return make
