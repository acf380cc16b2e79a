"""gqlchannels.testing.GraphQLTestClient: the served application, in process, answering as a
real server does; subscriptions that start once they listen; failures that say what failed."""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from django.conf import settings
from django.test import override_settings
from websockets.asyncio.client import connect

import gqlchannels
from gqlchannels import Limits, MessageNotSerializable
from gqlchannels.testing import (
    ConnectionClosed,
    ConnectionRefused,
    GraphQLTestClient,
    GraphQLTestClientError,
    StartupFailed,
    SubscriptionEnded,
    SubscriptionTimeout,
)
from gqlchannels.testing.client import ACCEPT
from tests.support.server import ServerProcess, clean_env

OPS_APP = "tests.support.ops_schema:schema"
OPS_AUTH = "tests.support.ops_schema:auth"
TESTING_APP = "tests.support.testing_schema:schema"
CHAT_APP = "gqlchannels.examples.chat:schema"
TOKEN = {"Authorization": "Bearer good-token"}
JOIN = "subscription($rooms: [ChatRoom!]!) { joinChatRooms(rooms: $rooms) { id message } }"
SEND = "mutation($room: ChatRoom!, $message: String!) { sendChatMessage(room: $room, message: $message) }"


def note(text: str) -> dict[str, Any]:
    return {"type": "note", "text": text}


# The same answers as a real server, for the same options.

@pytest.fixture(scope="module")
def ops_server() -> Iterator[ServerProcess]:
    with ServerProcess(OPS_APP, "--auth", OPS_AUTH, "--max-depth", "4") as server:
        yield server


def ops_client(**options: Any) -> GraphQLTestClient:
    return GraphQLTestClient(OPS_APP, auth=OPS_AUTH, limits=Limits(max_depth=4), **options)


@pytest.mark.parametrize("query, headers", [
    ("{ whoami }", TOKEN),  # the user the auth hook returned, in the context
    ("{ boom }", TOKEN),  # a resolver's KeyError, masked
    ("{ node { child { child { child { child { value } } } } } }", TOKEN),  # over --max-depth
    ("{ nope }", TOKEN),  # does not validate: 400
    ("{ hello }", {}),  # no token: 401
])
async def test_execute_answers_as_the_real_server_does(ops_server: ServerProcess, query: str,
                                                        headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        served = await http.post(f"{ops_server.url}/graphql", json={"query": query},
                                 headers={"accept": ACCEPT, **headers})
    body = served.json()
    async with ops_client() as client:
        result = await client.execute(query, headers=headers)
    assert (result.status, result.data, result.errors) == (served.status_code, body.get("data"), body.get("errors"))
    assert result.headers["content-type"] == served.headers["content-type"]


async def served_subscription(server: ServerProcess, query: str) -> list[dict[str, Any]]:
    """The payloads a real server sends for a subscription, until it completes it."""
    async with connect(server.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": TOKEN}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        payloads = []
        while (message := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] == "next":
            payloads.append(message["payload"])
        assert message["type"] == "complete", message
        return payloads


async def test_subscription_errors_are_masked_as_the_real_server_masks_them(ops_server: ServerProcess) -> None:
    query = "subscription { leaky { secret } }"  # a field that fails, then the stream fails
    served = await served_subscription(ops_server, query)
    async with ops_client() as client, client.subscribe(query, connection_params=TOKEN) as stream:
        received = [{key: value for key, value in vars(result).items() if value is not None or key == "data"}
                    async for result in stream]
    assert received == served
    assert [error["message"] for payload in received for error in payload["errors"]] == ["Unexpected error."] * 2


async def test_debug_shows_what_masking_hides() -> None:
    async with ops_client(debug=True) as client:
        result = await client.execute("{ boom }", headers=TOKEN)
    assert "hunter2" in result.errors[0]["message"]


async def test_resolvers_see_the_servers_context() -> None:
    async with GraphQLTestClient(TESTING_APP, auth=OPS_AUTH) as client:
        result = await client.execute('{ context user header(name: "x-trace") }', headers={**TOKEN, "X-Trace": "t1"})
        assert result.data == {"context": ["events", "request", "user"], "user": "alice", "header": "t1"}
        async with client.subscribe("subscription { whoami }", connection_params=TOKEN) as stream:
            assert (await stream.next()).data == {"whoami": "alice"}


# Subscriptions start once they listen.

async def test_subscribing_waits_until_the_resolver_listens() -> None:
    """The resolver joins its groups only after a while and sends nothing first: what is
    published as soon as subscribe() returns must reach it."""
    async with GraphQLTestClient(TESTING_APP) as client:
        async with client.subscribe("subscription { late(groups: [\"a\", \"b\"]) }") as stream:
            await client.publish("b", note("published at once"))
            assert (await stream.next()).data == {"late": "published at once"}


async def test_subscribing_waits_for_strawberrys_listen_to_channel() -> None:
    async with GraphQLTestClient(TESTING_APP) as client:
        async with client.subscribe('subscription { pageStyle(group: "g") }') as stream:
            await client.publish("g", note("to the connection's channel"))
            assert (await stream.next()).data == {"pageStyle": "to the connection's channel"}


async def test_a_subscription_that_never_starts_times_out_naming_it() -> None:
    async with GraphQLTestClient(TESTING_APP, timeout=0.5) as client:
        with pytest.raises(SubscriptionTimeout) as timed_out:
            async with client.subscribe("subscription { stuck }"):
                pass
    message = str(timed_out.value)
    assert "'subscription { stuck }' did not start within 0.5 s" in message
    assert "did not wait for messages from the channel layer" in message
    assert isinstance(timed_out.value, TimeoutError)


async def test_a_next_that_times_out_leaves_the_subscription_running() -> None:
    async with GraphQLTestClient(CHAT_APP) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}, operation_name=None) as lobby:
            await lobby.next()  # the join notice
            with pytest.raises(SubscriptionTimeout, match="no result from subscription .*joinChatRooms.* within 0.2 s"):
                await lobby.next(timeout=0.2)
            await client.execute(SEND, {"room": {"id": "lobby"}, "message": "still here"})
            assert (await lobby.next()).data == {"joinChatRooms": {"id": "lobby", "message": "still here"}}


async def test_iteration_ends_when_the_server_completes() -> None:
    async with GraphQLTestClient("tests.support.extensions_schema:plain") as client:
        async with client.subscribe("subscription { count(to: 3) }") as stream:
            assert [result.data async for result in stream] == [{"count": 1}, {"count": 2}, {"count": 3}]
            with pytest.raises(SubscriptionEnded):
                await stream.next()


async def test_an_operation_refused_before_it_runs_is_one_result_with_errors() -> None:
    async with GraphQLTestClient(TESTING_APP) as client, client.subscribe("subscription { nope }") as stream:
        refused = await stream.next()
        assert refused.data is None and "Cannot query field 'nope'" in refused.errors[0]["message"]
        with pytest.raises(SubscriptionEnded):
            await stream.next()


async def test_leaving_ends_the_operation_and_its_groups() -> None:
    async with GraphQLTestClient(CHAT_APP) as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": "lobby"}, {"id": "kitchen"}]}):
            assert set(client.layer.groups) == {"chat-room-lobby", "chat-room-kitchen"}
        assert client.layer.groups == {}  # left by the time the block is left


# Refusals and closes.

async def test_an_auth_hook_refusal_carries_its_close_code() -> None:
    async with GraphQLTestClient(TESTING_APP, auth=OPS_AUTH) as client:
        with pytest.raises(ConnectionRefused) as refused:
            async with client.subscribe("subscription { whoami }", connection_params={"Authorization": "Bearer bad"}):
                pass
    assert (refused.value.code, refused.value.reason) == (4403, "Forbidden")
    assert "4403 (Forbidden)" in str(refused.value) and "auth hook" in str(refused.value)


@pytest.mark.parametrize("origin, allowed", [("https://app.example", True), ("https://evil.example", False),
                                             ("http://testserver", True)])
async def test_a_refused_origin_is_the_403_a_server_answers(origin: str, allowed: bool) -> None:
    async with GraphQLTestClient(TESTING_APP, allowed_origins=["https://app.example"]) as client:
        subscription = client.subscribe("subscription { whoami }", headers={"Origin": origin})
        if allowed:
            async with subscription as stream:
                assert (await stream.next()).data == {"whoami": "None"}
            return
        with pytest.raises(ConnectionRefused) as refused:
            async with subscription:
                pass
    assert refused.value.code == 403
    assert "refused the WebSocket handshake" in str(refused.value)


async def test_a_close_while_subscribed_is_reported_with_its_code() -> None:
    async with GraphQLTestClient(CHAT_APP) as client, client.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}) as lobby:
        await lobby.next()
        assert await client.app.application_mapping["websocket"].routes["/graphql"].close_all() == 1
        with pytest.raises(ConnectionClosed) as closed:
            await lobby.next()
    assert (closed.value.code, closed.value.reason) == (1001, "server shutting down")


# The lifespan, the layer and isolation.

async def test_each_client_has_a_layer_of_its_own() -> None:
    before = settings.CHANNEL_LAYERS
    async with GraphQLTestClient(CHAT_APP) as one, GraphQLTestClient(CHAT_APP) as two:
        assert one.layer is not two.layer
        async with one.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}) as mine, \
                two.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}) as theirs:
            await mine.next()  # the join notices
            await theirs.next()
            await two.execute(SEND, {"room": {"id": "lobby"}, "message": "for two only"})
            assert (await theirs.next()).data["joinChatRooms"]["message"] == "for two only"
            with pytest.raises(SubscriptionTimeout):
                await mine.next(timeout=0.3)
    assert settings.CHANNEL_LAYERS == before  # Django's settings untouched


class RecordingLayer(InMemoryChannelLayer):
    closed = False

    async def close(self) -> None:
        self.closed = True


async def test_the_lifespan_starts_and_stops_the_layer_as_a_server_does() -> None:
    aliases = set(channel_layers.backends)
    layer = RecordingLayer()
    async with GraphQLTestClient(CHAT_APP, layer=layer) as client:
        assert client.layer is layer
        assert (await client.http.get("/readyz")).json() == {"status": "ready"}  # started, as a server
        async with client.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}) as lobby:
            await lobby.next()
            # The server's startup registers its layer: publishing from the test process,
            # from its loop or from a thread, and Channels' default layer, all reach it.
            await gqlchannels.apublish("chat-room-lobby", {"type": "chat.message", "room_id": "lobby", "message": "a"})
            await asyncio.to_thread(gqlchannels.publish, "chat-room-lobby",
                                    {"type": "chat.message", "room_id": "lobby", "message": "b"})
            await get_channel_layer().group_send("chat-room-lobby",
                                                 {"type": "chat.message", "room_id": "lobby", "message": "c"})
            assert [(await lobby.next()).data["joinChatRooms"]["message"] for _ in "abc"] == ["a", "b", "c"]
        assert not layer.closed
    assert layer.closed  # by the lifespan shutdown
    assert set(channel_layers.backends) <= aliases  # nothing of the client is left held
    with pytest.raises(gqlchannels.ConfigError):  # no server layer registered any more
        await gqlchannels.apublish("chat-room-lobby", {"type": "chat.message"})


async def test_a_schema_written_for_strawberrys_channels_page_works() -> None:
    """Its mutation publishes through get_channel_layer() itself, not the context."""
    async with GraphQLTestClient("tests.support.channels_page_schema:schema") as client:
        async with client.subscribe(JOIN, {"rooms": [{"id": "lobby"}]}) as lobby:
            assert (await lobby.next()).data["joinChatRooms"]["message"].endswith(" joined")
            await client.execute(SEND, {"room": {"id": "lobby"}, "message": "page style"})
            assert (await lobby.next()).data == {"joinChatRooms": {"id": "lobby", "message": "page style"}}


async def test_a_test_that_changes_channel_layers_keeps_the_clients_layer() -> None:
    """override_settings(CHANNEL_LAYERS=...) (pytest-django's `settings` fixture does the same)
    makes Channels forget the layers it holds, the app's own among them."""
    async with GraphQLTestClient(TESTING_APP) as client:
        with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
            assert get_channel_layer() is not None and get_channel_layer().layer is client.layer
            async with client.subscribe('subscription { late(groups: ["g"]) }') as stream:
                await client.publish("g", note("still through the client's layer"))
                assert (await stream.next()).data == {"late": "still through the client's layer"}


class FailingLayer(RecordingLayer):
    def add_state_listener(self, listener: Any) -> None:
        raise RuntimeError("the layer cannot report its state")


async def test_a_failed_startup_is_raised_and_cleaned_up() -> None:
    layer = FailingLayer()
    with pytest.raises(StartupFailed, match="startup failed: the layer cannot report its state"):
        async with GraphQLTestClient(CHAT_APP, layer=layer):
            pass
    assert layer.closed


async def test_a_layer_url_gives_the_client_its_own_rabbitmq_layer(amqp_url: str) -> None:
    async with GraphQLTestClient(CHAT_APP, layer=amqp_url) as client:
        assert type(client.layer).__name__ == "RabbitMQChannelLayer"
        async with client.subscribe(JOIN, {"rooms": [{"id": "over-rabbitmq"}]}) as room:
            assert (await room.next()).data["joinChatRooms"]["message"] == "Someone just joined the room!"
            await client.publish("chat-room-over-rabbitmq", {"type": "chat.message", "room_id": "over-rabbitmq",
                                                             "message": "through the broker"})
            assert (await room.next()).data["joinChatRooms"]["message"] == "through the broker"
    assert not client.layer.state().connected  # closed by the lifespan shutdown


async def test_publish_checks_messages_as_a_resolvers_publish_does() -> None:
    async with GraphQLTestClient(CHAT_APP) as client:
        with pytest.raises(MessageNotSerializable, match="message\\['at'\\] is a datetime"):
            await client.publish("chat-room-lobby", {"type": "chat.message", "at": datetime.date.today()})


async def test_a_client_not_entered_says_how_to_use_it() -> None:
    with pytest.raises(GraphQLTestClientError, match="async with"):
        await GraphQLTestClient(CHAT_APP).execute("{ hello }")


IN_A_DJANGO_PROJECT = """
import asyncio

import django
from django.conf import settings
from django.test import override_settings

PROJECT_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 7}}}
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "channels"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    CHANNEL_LAYERS=PROJECT_LAYERS,
)
django.setup()

from channels.layers import get_channel_layer
from gqlchannels.testing import GraphQLTestClient

JOIN = "subscription { joinChatRooms(rooms: [{id: \\"lobby\\"}]) { id message } }"
SEND = "mutation { sendChatMessage(room: {id: \\"lobby\\"}, message: \\"hi\\") }"


async def main():
    project_layer = get_channel_layer()
    for _ in range(2):  # a second client in the same process, as a test suite makes them
        async with GraphQLTestClient("gqlchannels.examples.chat:schema") as client:
            async with client.subscribe(JOIN) as lobby:
                print("joined:", (await lobby.next()).data["joinChatRooms"]["message"])
                print("sent:", (await client.execute(SEND)).data)
                print("received:", (await lobby.next()).data["joinChatRooms"]["message"])
    print("project layer kept:", get_channel_layer() is project_layer, settings.CHANNEL_LAYERS == PROJECT_LAYERS)


asyncio.run(main())
"""


def test_inside_a_django_project_with_a_database() -> None:
    """A Django project's own settings (CHANNEL_LAYERS, a database, so Channels' own consumer
    dispatch): each client still gets a layer of its own, and the project's is left alone."""
    result = subprocess.run([sys.executable, "-c", IN_A_DJANGO_PROJECT], capture_output=True, text=True,
                            timeout=60, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "joined: Someone just joined the room!", "sent: {'sendChatMessage': True}", "received: hi",
    ] * 2 + ["project layer kept: True True"], result.stdout + result.stderr
