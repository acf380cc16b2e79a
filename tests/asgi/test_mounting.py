"""The README's "mount it in your own Django project" example, as a user follows it: a fresh
`django-admin startproject` (no CHANNEL_LAYERS in its settings), the README's asgi.py
pasted in verbatim, a schema module beside it, served by plain uvicorn. GraphQL answers on
its paths (with Django's user from AuthMiddlewareStack), Django on every other path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.gql_clients import SEND_MESSAGE, Subscriber, graphql_post
from tests.support.readme import readme_example
from tests.support.server import ServerProcess, clean_env

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

LIFESPAN_LINE = '    "lifespan": graphql_app,'
NO_LAYERS_LOGGED = "Django's settings have no CHANNEL_LAYERS"


def readme_asgi() -> str:
    return readme_example("Python API: mount it in your own Django project")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh `django-admin startproject mysite`, with the README's asgi.py and a schema."""
    root = tmp_path_factory.mktemp("project")
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", str(root)],
                   check=True, capture_output=True, timeout=60, env=clean_env())
    settings = (root / "mysite" / "settings.py").read_text()
    assert "CHANNEL_LAYERS" not in settings and "channels" not in settings  # as Django made it
    (root / "mysite" / "asgi.py").write_text(readme_asgi())
    (root / "mysite" / "graphql.py").write_text(textwrap.dedent(SCHEMA))
    return root


def serve(root: Path, module: str, *args: str) -> ServerProcess:
    return ServerProcess(
        f"{module}:application", "--host", "127.0.0.1", *args,
        command=("-m", "uvicorn"), ready_path=f"/graphql?query={quote('{ hello }')}", cwd=root,
        env=clean_env(PYTHONPATH=str(root)),
    )


@pytest.fixture(scope="module")
def mounted_server(project: Path) -> Iterator[ServerProcess]:
    """The README's example, run as the README says."""
    with serve(project, "mysite.asgi") as server:
        yield server


@pytest.fixture(scope="module")
def mounted_without_lifespan(project: Path) -> Iterator[ServerProcess]:
    """The same without the "lifespan" entry, under --lifespan off: it must still serve."""
    asgi = readme_asgi()
    assert LIFESPAN_LINE in asgi
    (project / "mysite" / "asgi_no_lifespan.py").write_text(asgi.replace(LIFESPAN_LINE, ""))
    with serve(project, "mysite.asgi_no_lifespan", "--lifespan", "off") as server:
        yield server


def test_query_sees_djangos_user(mounted_server: ServerProcess) -> None:
    result = graphql_post(mounted_server.url, "{ hello whoami }")
    # AuthMiddlewareStack put Django's user into the scope the resolvers see.
    assert result == {"data": {"hello": "Hello, world!", "whoami": "AnonymousUser"}}


@pytest.mark.parametrize("server_fixture", ["mounted_server", "mounted_without_lifespan"])
async def test_subscription_receives_a_mutation(request: pytest.FixtureRequest, server_fixture: str) -> None:
    server: ServerProcess = request.getfixturevalue(server_fixture)
    room = f"room-{uuid.uuid4().hex[:8]}"
    subscriber = await Subscriber.open(server.ws_url)
    try:
        assert await subscriber.join_room(room) == "Someone just joined the room!"
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{server.url}/graphql",
                                         json={"query": SEND_MESSAGE, "variables": {"room": room, "msg": "mounted"}})
        assert response.json() == {"data": {"sendChatMessage": True}}
        assert (await subscriber.next_data())["joinChatRooms"]["message"] == "mounted"
    finally:
        await subscriber.close()
    # The project has no CHANNEL_LAYERS: the in-process layer is used, and the log says so once.
    assert server.log().count(NO_LAYERS_LOGGED) == 1, server.log()


def test_other_paths_go_to_django(mounted_server: ServerProcess) -> None:
    admin = httpx.get(f"{mounted_server.url}/admin/", timeout=10)
    assert admin.status_code == 302 and admin.headers["location"] == "/admin/login/?next=/admin/"
    login = httpx.get(f"{mounted_server.url}/admin/login/", timeout=10)
    assert login.status_code == 200 and "Django administration" in login.text
    for path in ("/healthz", "/no-such-page"):
        response = httpx.get(f"{mounted_server.url}{path}", timeout=10)
        assert response.status_code == 404, (path, response.text[:200])
        assert response.headers["content-type"].startswith("text/html")  # Django's page, not ours
    assert "Traceback" not in mounted_server.log()


def test_graphiql_and_its_files_are_served(mounted_server: ServerProcess) -> None:
    page = httpx.get(f"{mounted_server.url}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    script = httpx.get(f"{mounted_server.url}/graphql/ide/graphiql-3.8.3.min.js", timeout=10)
    assert script.status_code == 200


async def test_websocket_to_another_path_is_404(mounted_server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{mounted_server.port}/elsewhere", subprotocols=["graphql-transport-ws"])
    assert refused.value.response.status_code == 404
    assert "Traceback" not in mounted_server.log()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=clean_env())


def test_build_application_refuses_layer_when_django_configured() -> None:
    # Inside a Django project the project's CHANNEL_LAYERS decides; a second opinion is an error.
    result = run_python("""
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
    assert "CHANNEL_LAYERS" in result.stdout, result.stdout + result.stderr


def test_build_application_takes_layer_when_django_has_none() -> None:
    result = run_python("""
        import django
        from django.conf import settings
        settings.configure()
        django.setup()
        from gqlchannels import build_application
        from gqlchannels.examples.chat import schema
        build_application(schema, layer="memory://?capacity=7")
        build_application(schema, layer="memory://?capacity=7")  # the same again: no conflict
        print(settings.CHANNEL_LAYERS["default"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'BACKEND': 'gqlchannels.layers.inprocess.InProcessChannelLayer', 'CONFIG': {'capacity': 7}}"
    assert result.stderr.count(NO_LAYERS_LOGGED) == 1, result.stderr


def test_build_application_takes_a_layer_instance_of_its_own() -> None:
    """Several apps in one Django project, each with a layer of its own (tests/testing shows
    each serving through its own): no conflict with the project's CHANNEL_LAYERS, which is
    neither changed nor replaced as the default, and no word about it in the log."""
    result = run_python("""
        import django
        from django.conf import settings
        project = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        settings.configure(CHANNEL_LAYERS=project)
        django.setup()
        from channels.layers import InMemoryChannelLayer, get_channel_layer
        from gqlchannels import build_application
        from gqlchannels.examples.chat import schema
        layers = [InMemoryChannelLayer(), InMemoryChannelLayer()]
        for layer in layers:
            build_application(schema, layer=layer)
        print(settings.CHANNEL_LAYERS == project, get_channel_layer() not in layers)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True"
    assert NO_LAYERS_LOGGED not in result.stderr
