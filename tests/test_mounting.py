"""The seed's second example: gqlchannels' app mounted in a user's own ProtocolTypeRouter,
beside Django's own ASGI app, under AuthMiddlewareStack, served by plain uvicorn."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gql_clients import SEND_MESSAGE, Subscriber, graphql_post
from tests.support.server import ServerProcess, clean_env

SETTINGS = """
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "channels"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
ROOT_URLCONF = "mysite.urls"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
"""

URLS = """
from django.http import JsonResponse
from django.urls import path

urlpatterns = [path("api/ping", lambda request: JsonResponse({"pong": True}))]
"""

SCHEMA = """
import strawberry
from gqlchannels.examples import chat

@strawberry.type
class Query(chat.Query):
    @strawberry.field
    def whoami(self, info: strawberry.Info) -> str:
        request = info.context["request"]
        scope = request.consumer.scope if hasattr(request, "consumer") else request.scope
        return str(scope["user"])

schema = strawberry.Schema(query=Query, mutation=chat.Mutation, subscription=chat.Subscription)
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

from gqlchannels import build_application
from mysite.graphql import schema

graphql_app = build_application(schema)

application = ProtocolTypeRouter({
    "http": URLRouter([
        re_path("^graphql", AuthMiddlewareStack(graphql_app)),
        re_path("^api", django_asgi_app),
    ]),
    "websocket": URLRouter([
        re_path("^graphql", AuthMiddlewareStack(graphql_app)),
    ]),
})
"""


@pytest.fixture(scope="module")
def mounted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    project = tmp_path_factory.mktemp("project")
    package = project / "mysite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS % {"db": str(project / "db.sqlite3")})
    (package / "urls.py").write_text(URLS)
    (package / "graphql.py").write_text(textwrap.dedent(SCHEMA))
    (package / "asgi.py").write_text(ASGI)
    server = ServerProcess(
        "mysite.asgi:application", "--host", "127.0.0.1", "--lifespan", "off",
        command=("-m", "uvicorn"), ready_path="/api/ping", cwd=project,
        env=clean_env(PYTHONPATH=str(project)),
    )
    with server:
        yield server


def test_django_view_beside_graphql(mounted_server: ServerProcess) -> None:
    response = httpx.get(f"{mounted_server.url}/api/ping", timeout=10)
    assert response.json() == {"pong": True}
    result = graphql_post(mounted_server.url, "{ hello whoami }")
    # AuthMiddlewareStack put Django's user into the scope the resolvers see.
    assert result == {"data": {"hello": "Hello, world!", "whoami": "AnonymousUser"}}


async def test_subscription_on_mounted_app(mounted_server: ServerProcess) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    subscriber = await Subscriber.open(mounted_server.ws_url)
    try:
        await subscriber.join_room(room)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{mounted_server.url}/graphql",
                                         json={"query": SEND_MESSAGE, "variables": {"room": room, "msg": "mounted"}})
        assert response.json() == {"data": {"sendChatMessage": True}}
        assert (await subscriber.next_data())["joinChatRooms"]["message"] == "mounted"
    finally:
        await subscriber.close()


def test_build_application_refuses_layer_when_django_configured() -> None:
    # Inside a Django project the project's CHANNEL_LAYERS decides; a second opinion is an error.
    code = textwrap.dedent("""
        import django
        from django.conf import settings
        settings.configure(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
        django.setup()
        from gqlchannels import build_application
        from gqlchannels.errors import ConfigError
        from gqlchannels.examples.chat import schema
        try:
            build_application(schema, layer="amqp://guest:guest@127.0.0.1/")
        except ConfigError as exc:
            print(exc)
    """)
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env())
    assert "CHANNEL_LAYERS" in result.stdout, result.stdout + result.stderr
