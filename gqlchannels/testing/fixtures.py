"""What the pytest plugin (_gqlchannels_pytest_plugin, loaded by pytest itself) serves by default."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from strawberry.schema import BaseSchema


@dataclasses.dataclass(frozen=True)
class AppSpec:
    """A schema and `build_application` options: what `gqlchannels_client()` serves."""

    schema: BaseSchema | str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def app_fixture(schema: BaseSchema | str, **options: Any) -> Any:
    """The `gqlchannels_app` fixture, for conftest.py, in one line:

        gqlchannels_app = gqlchannels.testing.app_fixture("myapp.schema:schema", auth="myapp.auth:authenticate")

    Tests then get clients serving that schema with those options from the `gqlchannels_client`
    fixture: `async with gqlchannels_client() as client:`; options given there win.
    """
    import pytest  # only where a conftest asks for it: gqlchannels.testing does not need pytest

    spec = AppSpec(schema, options)

    @pytest.fixture(name="gqlchannels_app")
    def gqlchannels_app() -> AppSpec:
        return spec

    return gqlchannels_app
