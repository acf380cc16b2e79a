"""Subscriptions over both WebSocket protocols, fed by a mutation sent over HTTP,
through the in-memory layer and through RabbitMQ; and across processes and workers. What
the chat example's resolvers do (which rooms' messages arrive, what the join notice says)
is served in process (gqlchannels.testing): no socket is the point there."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from gqlchannels.testing import GraphQLTestClient
from tests.support.gql_clients import JOIN_ROOMS, SEND_MESSAGE, Subscriber, agraphql_post, graphql_post
from tests.support.server import CHAT_APP, ServerProcess

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
WORKER_APP = "tests.support.worker_schema:schema"


def room_name() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


async def send_message(base_url: str, room: str, text: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        result = await agraphql_post(client, base_url, SEND_MESSAGE, {"room": room, "msg": text})
    assert result == {"data": {"sendChatMessage": True}}


async def assert_mutation_reaches_subscriber(sub_server: ServerProcess, mut_server: ServerProcess,
                                             protocol: str) -> None:
    room = room_name()
    subscriber = await Subscriber.open(sub_server.ws_url, protocol)
    try:
        await subscriber.join_room(room)
        await send_message(mut_server.url, room, "hello over the layer")
        data = await subscriber.next_data()
        assert data == {"joinChatRooms": {"id": room, "message": "hello over the layer"}}
    finally:
        await subscriber.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscription_through_memory_layer(memory_server: ServerProcess, protocol: str) -> None:
    await assert_mutation_reaches_subscriber(memory_server, memory_server, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscription_through_rabbitmq(amqp_server: ServerProcess, protocol: str) -> None:
    await assert_mutation_reaches_subscriber(amqp_server, amqp_server, protocol)


async def test_other_rooms_messages_do_not_arrive() -> None:
    mine, other = room_name(), room_name()
    async with GraphQLTestClient(CHAT_APP) as client:
        async with client.subscribe(JOIN_ROOMS, {"rooms": [{"id": mine}]}) as subscription:
            assert (await subscription.next()).data["joinChatRooms"]["id"] == mine  # the join notice
            for room, text in ((other, "not for you"), (mine, "for you")):
                sent = await client.execute(SEND_MESSAGE, {"room": room, "msg": text})
                assert sent.data == {"sendChatMessage": True}
            assert (await subscription.next()).data["joinChatRooms"]["message"] == "for you"


async def test_two_servers_share_one_rabbitmq(amqp_url: str) -> None:
    with ServerProcess(CHAT_APP, "--layer", amqp_url) as one, ServerProcess(CHAT_APP, "--layer", amqp_url) as two:
        await assert_mutation_reaches_subscriber(one, two, "graphql-transport-ws")
        await assert_mutation_reaches_subscriber(two, one, "graphql-ws")


async def worker_of(subscriber: Subscriber) -> int:
    """The process serving this WebSocket: asked over the connection itself, where every
    operation runs in the worker that accepted it."""
    await subscriber.send({"id": "worker", "type": "subscribe", "payload": {"query": "{ worker }"}})
    result, done = await subscriber.recv(), await subscriber.recv()
    assert result["type"] == "next" and done == {"id": "worker", "type": "complete"}, (result, done)
    return result["payload"]["data"]["worker"]


async def test_two_workers_deliver_across_workers(amqp_url: str, tmp_path: Path) -> None:
    """A mutation handled by one worker reaches the subscribers on the other. Each mutation
    travels over a subscriber's own socket, so it runs in the worker that accepted that
    socket; the second socket goes to the other worker because the first one is kept busy."""
    room = room_name()
    with ServerProcess(WORKER_APP, "--layer", amqp_url, "--workers", "2") as server:
        first = await Subscriber.open(server.ws_url)
        busy = tmp_path / "busy"
        await first.send({"id": "hold", "type": "subscribe",
                          "payload": {"query": f'{{ hold(seconds: 3, marker: "{busy}") }}'}})
        while not busy.exists():  # the first socket's worker is blocked from now on
            await asyncio.sleep(0.01)
        second = await Subscriber.open(server.ws_url)  # so the other worker accepts this one
        try:
            held = await first.recv(timeout=20)
            assert held["id"] == "hold" and (await first.recv())["type"] == "complete"
            assert await worker_of(first) != await worker_of(second)
            for subscriber in (first, second):
                await subscriber.join_room(room)
            texts = {first: "sent through the first worker", second: "sent through the second worker"}
            for sender, text in texts.items():
                await sender.send({"id": f"send-{sender.op_id}", "type": "subscribe", "payload": {
                    "query": SEND_MESSAGE, "variables": {"room": room, "msg": text}}})
            for subscriber in (first, second):
                assert await room_messages(subscriber, len(texts)) == set(texts.values())
        finally:
            await asyncio.gather(first.close(), second.close())


async def room_messages(subscriber: Subscriber, count: int) -> set[str]:
    """The next `count` room messages (not join notices) to the subscription, whatever other
    operations on the socket answer meanwhile."""
    seen: set[str] = set()
    async with asyncio.timeout(10):
        while len(seen) < count:
            message = await subscriber.recv()
            if message["type"] == "next" and message["id"] == subscriber.op_id:
                text = message["payload"]["data"]["joinChatRooms"]["message"]
                if not text.endswith("just joined the room!"):
                    seen.add(text)
    return seen


CHANNELS_PAGE_APP = "tests.support.channels_page_schema:schema"


@pytest.mark.parametrize("layer", ["memory", "amqp"])
async def test_channels_page_style_listen_to_channel(layer: str, amqp_url: str) -> None:
    """Strawberry's Channels page's own pattern, info.context["ws"].listen_to_channel on the connection's
    channel: each socket gets its room's messages, and only those."""
    args = ("--layer", amqp_url) if layer == "amqp" else ()
    query = "subscription($r: String!) { joinChatRooms(rooms: [{id: $r}]) { id message } }"
    with ServerProcess(CHANNELS_PAGE_APP, *args) as server:
        rooms = [room_name(), room_name()]
        subscribers = [await Subscriber.open(server.ws_url) for _ in rooms]
        try:
            for subscriber, room in zip(subscribers, rooms):
                await subscriber.subscribe(query, {"r": room})
                assert (await subscriber.next_data())["joinChatRooms"]["message"].endswith(" joined")
            for room in rooms:
                await send_message(server.url, room, f"to {room}")
            for subscriber, room in zip(subscribers, rooms):
                assert await subscriber.next_data() == {"joinChatRooms": {"id": room, "message": f"to {room}"}}
                with pytest.raises(TimeoutError):
                    await subscriber.recv(timeout=0.3)  # nothing from the other room
        finally:
            await asyncio.gather(*(s.close() for s in subscribers))


@pytest.mark.parametrize("flag", [None, "--ws-compression"])
async def test_permessage_deflate_only_when_asked_for(flag: str | None) -> None:
    """Browsers always offer permessage-deflate; the server accepts it only with --ws-compression
    (it costs about 41 KB per connection). Subscriptions work either way."""
    with ServerProcess(CHAT_APP, *([flag] if flag else [])) as server:
        subscriber = await Subscriber.open(server.ws_url, compression="deflate")
        try:
            negotiated = [type(e).__name__ for e in subscriber.ws.protocol.extensions]
            assert negotiated == (["PerMessageDeflate"] if flag else [])
            room = room_name()
            await subscriber.join_room(room)
            await send_message(server.url, room, "compressed or not " * 20)
            assert (await subscriber.next_data())["joinChatRooms"]["message"] == "compressed or not " * 20
        finally:
            await subscriber.close()


async def test_legacy_graphql_ws_mutation_on_the_subscribers_own_socket(memory_server: ServerProcess) -> None:
    """The way Apollo's old WebSocketLink works: the mutation travels over the same graphql-ws socket."""
    room = room_name()
    subscriber = await Subscriber.open(memory_server.ws_url, "graphql-ws")
    try:
        await subscriber.join_room(room)
        await subscriber.send({"id": "m", "type": "start", "payload": {
            "query": SEND_MESSAGE, "variables": {"room": room, "msg": "over graphql-ws"}}})
        received = [await subscriber.recv() for _ in range(3)]  # the mutation's data and complete, the message
        assert {"id": "m", "type": "data", "payload": {"data": {"sendChatMessage": True}}} in received
        assert {"id": "m", "type": "complete"} in received
        assert {"id": subscriber.op_id, "type": "data",
                "payload": {"data": {"joinChatRooms": {"id": room, "message": "over graphql-ws"}}}} in received
    finally:
        await subscriber.close()


async def test_join_notice_names_someone_not_a_channel() -> None:
    async with GraphQLTestClient(CHAT_APP) as client, \
            client.subscribe(JOIN_ROOMS, {"rooms": [{"id": room_name()}]}) as subscription:
        assert (await subscription.next()).data["joinChatRooms"]["message"] == "Someone just joined the room!"


async def test_join_notice_names_the_authenticated_user() -> None:
    async with GraphQLTestClient(CHAT_APP, auth="tests.support.ops_schema:auth") as client, \
            client.subscribe(JOIN_ROOMS, {"rooms": [{"id": room_name()}]},
                             connection_params={"Authorization": "Bearer good-token"}) as subscription:
        assert (await subscription.next()).data["joinChatRooms"]["message"] == "alice just joined the room!"


DATED_SCHEMA = """
import datetime

import strawberry
from gqlchannels.examples import chat


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def stamp(self, info: strawberry.Info) -> bool:
        # The developer's bug: a datetime the layer cannot carry, in a message the client never wrote.
        await info.context["events"].publish("stamps", {"type": "stamp", "at": datetime.datetime.now()})
        return True


schema = strawberry.Schema(query=chat.Query, mutation=Mutation)
"""


def test_unserializable_message_is_the_servers_error(tmp_path: Path) -> None:
    (tmp_path / "dated.py").write_text(DATED_SCHEMA)
    with ServerProcess("dated:schema", "--app-dir", str(tmp_path)) as server:
        result = graphql_post(server.url, "mutation { stamp }")
        assert result["errors"][0]["message"] == "Unexpected error.", result  # nothing of the message shown
        assert "message['at'] is a datetime.datetime" in server.log()  # the operator sees why
