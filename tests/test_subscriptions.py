"""Subscriptions over both WebSocket protocols, fed by a mutation sent over HTTP,
through the in-memory layer and through RabbitMQ; and across processes and workers."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.support.gql_clients import SEND_MESSAGE, Subscriber, agraphql_post
from tests.support.server import CHAT_APP, ServerProcess

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


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


async def test_other_rooms_messages_do_not_arrive(memory_server: ServerProcess) -> None:
    mine, other = room_name(), room_name()
    subscriber = await Subscriber.open(memory_server.ws_url)
    try:
        await subscriber.join_room(mine)
        await send_message(memory_server.url, other, "not for you")
        await send_message(memory_server.url, mine, "for you")
        assert (await subscriber.next_data())["joinChatRooms"]["message"] == "for you"
    finally:
        await subscriber.close()


async def test_two_servers_share_one_rabbitmq(amqp_url: str) -> None:
    with ServerProcess(CHAT_APP, "--layer", amqp_url) as one, ServerProcess(CHAT_APP, "--layer", amqp_url) as two:
        await assert_mutation_reaches_subscriber(one, two, "graphql-transport-ws")
        await assert_mutation_reaches_subscriber(two, one, "graphql-ws")


async def test_two_workers_deliver_across_workers(amqp_url: str) -> None:
    """Subscribers land on both workers (their channel names carry their process's queue);
    every mutation, whichever worker handles it, reaches every subscriber."""
    room = room_name()
    with ServerProcess(CHAT_APP, "--layer", amqp_url, "--workers", "2") as server:
        subscribers: list[Subscriber] = []
        processes: set[str] = set()
        try:
            for _ in range(24):  # bounded: the kernel spreads accepts, so both show up quickly
                subscriber = await Subscriber.open(server.ws_url)
                subscribers.append(subscriber)
                processes.add((await subscriber.join_room(room)).split("!")[0])
                if len(processes) == 2 and len(subscribers) >= 4:
                    break
            assert len(processes) == 2, f"all {len(subscribers)} connections went to one worker"
            texts = [f"message {i}" for i in range(6)]
            for text in texts:  # separate connections: either worker may handle each one
                await send_message(server.url, room, text)
            for subscriber in subscribers:
                received = await subscriber.messages_until(texts[-1])
                assert [t for t in received if t in texts] == texts
        finally:
            await asyncio.gather(*(s.close() for s in subscribers))


SEED_STYLE_APP = "tests.support.seed_style_schema:schema"


@pytest.mark.parametrize("layer", ["memory", "amqp"])
async def test_seed_style_listen_to_channel(layer: str, amqp_url: str) -> None:
    """The seed's own pattern, info.context["ws"].listen_to_channel on the connection's
    channel: each socket gets its room's messages, and only those."""
    args = ("--layer", amqp_url) if layer == "amqp" else ()
    query = "subscription($r: String!) { joinChatRooms(rooms: [{id: $r}]) { id message } }"
    with ServerProcess(SEED_STYLE_APP, *args) as server:
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
