"""The in-process layer behind memory://: the Channels layer contract, one shared message per
group send, capacity and expiry counted; and through the real server, every subscriber
getting every event, drops counted in /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from gqlchannels.config.layer_url import parse_layer_url
from gqlchannels.errors import InvalidName
from gqlchannels.layers import InProcessChannelLayer, RabbitMQChannelLayer
from gqlchannels.layers.buffers import ChannelBuffers
from gqlchannels.testing import GraphQLTestClient
from tests.support.gql_clients import Subscriber
from tests.support.server import ServerProcess, metric

BURST_APP = "tests.support.burst_schema:schema"
ROOM = "subscription($room: String!) { room(room: $room) }"
BURST = "mutation($room: String!, $count: Int!, $tag: String) { burst(room: $room, count: $count, tag: $tag) }"


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for a condition the event loop brings about (no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0)


def receiving(layer: InProcessChannelLayer, channel: str) -> asyncio.Task:
    return asyncio.ensure_future(layer.receive(channel))


# -- what memory:// builds ---------------------------------------------------------------


async def test_memory_url_and_test_client_use_the_in_process_layer() -> None:
    layer = parse_layer_url("memory://?capacity=3&expiry=5&group_expiry=0").make_layer()
    assert isinstance(layer, InProcessChannelLayer)
    assert (layer.buffers.capacity, layer.buffers.expiry, layer.group_expiry) == (3, 5, 0)
    async with GraphQLTestClient(BURST_APP) as client:
        assert isinstance(client.layer, InProcessChannelLayer)


def test_local_fan_out_is_the_one_the_rabbitmq_layer_uses() -> None:
    memory = InProcessChannelLayer()
    rabbit = RabbitMQChannelLayer(url="amqp://guest:guest@127.0.0.1:5672/%2F")
    assert type(memory.buffers) is type(rabbit.buffers) is ChannelBuffers


# -- the Channels layer contract ------------------------------------------------------------


async def test_send_and_receive_on_specific_and_plain_channels() -> None:
    layer = InProcessChannelLayer()
    specific = await layer.new_channel()
    assert "!" in specific and specific != await layer.new_channel()
    await layer.send(specific, {"type": "one"})
    await layer.send(specific, {"type": "two"})
    assert [await layer.receive(specific), await layer.receive(specific)] == [{"type": "one"}, {"type": "two"}]
    # A general channel name, as Channels' own layer accepts; a waiting receiver gets it.
    waiting = receiving(layer, "plain-channel")
    await until(lambda: layer.buffers.waiting("plain-channel"))
    await layer.send("plain-channel", {"type": "three"})
    assert await waiting == {"type": "three"}
    with pytest.raises(InvalidName):
        await layer.send("bad name", {"type": "x"})
    with pytest.raises(InvalidName):
        await layer.receive("bad name")
    with pytest.raises(TypeError):
        await layer.send(specific, ["not", "a", "dict"])


async def test_group_send_gives_every_member_the_same_message_object() -> None:
    layer = InProcessChannelLayer()
    waiting, buffered = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", waiting)
    await layer.group_add("room", buffered)
    receiver = receiving(layer, waiting)
    await until(lambda: layer.buffers.waiting(waiting))
    message = {"type": "chat.message", "payload": {"text": "hi", "tags": ["a"]}}
    await layer.group_send("room", message)
    # No copy for anyone: a waiting member and one whose message was buffered get the very dict.
    assert await receiver is message
    assert await layer.receive(buffered) is message
    assert layer.state().delivered == 2 and layer.state().published == 1


async def test_group_discard_and_empty_groups() -> None:
    layer = InProcessChannelLayer()
    stays, leaves = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", stays)
    await layer.group_add("room", leaves)
    await layer.group_discard("room", leaves)
    await layer.group_discard("room", leaves)  # twice, and never joined: no error
    await layer.group_discard("elsewhere", leaves)
    await layer.group_send("room", {"type": "after"})
    assert await layer.receive(stays) == {"type": "after"}
    assert layer.buffers.buffered(leaves) == 0
    await layer.group_discard("room", stays)
    assert layer.groups == {}  # the last member gone, the group is forgotten
    await layer.group_send("room", {"type": "nobody"})  # a group nobody is in: nobody's loss
    assert layer.state().dropped == 0
    with pytest.raises(InvalidName):
        await layer.group_add("bad group", stays)


async def test_a_full_channel_refuses_counts_and_spares_the_others() -> None:
    layer = InProcessChannelLayer(capacity=2)
    stuck, reading = await layer.new_channel(), await layer.new_channel()
    await layer.send(stuck, {"type": "1"})
    await layer.send(stuck, {"type": "2"})
    with pytest.raises(ChannelFull):
        await layer.send(stuck, {"type": "3"})
    await layer.group_add("room", stuck)
    await layer.group_add("room", reading)
    for number in range(5):
        receiver = receiving(layer, reading)
        await until(lambda: layer.buffers.waiting(reading))
        await layer.group_send("room", {"type": "g", "n": number})
        assert (await receiver)["n"] == number  # the member that reads gets every one
    # The full member kept its first two, lost the rest; each loss counted as "full".
    assert [await layer.receive(stuck), await layer.receive(stuck)] == [{"type": "1"}, {"type": "2"}]
    state = layer.state()
    assert (state.dropped_full, state.dropped_expired, state.dropped) == (6, 0, 6)
    assert state.published == 2 + 5 and state.delivered == 5 + 2


async def test_per_channel_capacity_by_pattern() -> None:
    layer = InProcessChannelLayer(capacity=1, channel_capacity={"roomy*": 3})
    for _ in range(3):
        await layer.send("roomy-channel", {"type": "x"})
    await layer.send("small-channel", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("small-channel", {"type": "x"})
    assert layer.buffers.buffered("roomy-channel") == 3


async def test_expired_messages_are_dropped_and_counted() -> None:
    layer = InProcessChannelLayer(expiry=0.05)
    kept, swept = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", kept)
    await layer.send(kept, {"type": "old"})
    await layer.send(swept, {"type": "old"})
    await asyncio.sleep(0.1)  # the expiry itself: time has to pass
    await layer.send(kept, {"type": "new"})
    assert await layer.receive(kept) == {"type": "new"}  # the expired one skipped when reached
    layer.sweep()  # what the sends do every few seconds: a channel nobody reads is emptied
    assert layer.buffers.buffered(swept) == 0
    state = layer.state()
    assert (state.dropped_expired, state.dropped_full, state.dropped) == (2, 0, 2)
    # Unlike Channels' layer, the channel whose message expired is still in its group.
    await layer.group_send("room", {"type": "later"})
    assert await layer.receive(kept) == {"type": "later"}


async def test_group_memberships_expire_unless_renewed() -> None:
    layer = InProcessChannelLayer(group_expiry=0.05)
    old, renewed = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", old)
    await layer.group_add("room", renewed)
    await asyncio.sleep(0.1)  # the group expiry itself
    await layer.group_add("room", renewed)
    layer.sweep()
    assert list(layer.groups["room"]) == [renewed]
    never = InProcessChannelLayer(group_expiry=0)
    await never.group_add("room", old)
    never.sweep()
    assert list(never.groups["room"]) == [old]


async def test_flush_forgets_groups_and_messages() -> None:
    layer = InProcessChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await layer.send(channel, {"type": "before"})
    await layer.flush()
    assert layer.groups == {} and layer.buffers.buffered(channel) == 0
    await layer.group_send("room", {"type": "to nobody"})
    await layer.send(channel, {"type": "after"})
    assert await layer.receive(channel) == {"type": "after"}
    await layer.close()


async def test_a_cancelled_receive_leaves_no_waiter_and_loses_nothing() -> None:
    layer = InProcessChannelLayer()
    channel = await layer.new_channel()
    receiver = receiving(layer, channel)
    await until(lambda: layer.buffers.waiting(channel))
    receiver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiver
    assert not layer.buffers.waiting(channel) and layer.buffers.waited_on() == set()
    await layer.send(channel, {"type": "kept"})  # buffered for the next receiver
    assert await layer.receive(channel) == {"type": "kept"}

    # Cancelled in the very moment it was handed a message (before its task resumed): the
    # message goes to whoever receives next, it is not lost with the cancelled receiver.
    receiver = receiving(layer, channel)
    await until(lambda: layer.buffers.waiting(channel))
    await layer.send(channel, {"type": "handed over"})
    receiver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiver
    assert await layer.receive(channel) == {"type": "handed over"}
    assert layer.state().delivered == 2


async def test_many_concurrent_receivers() -> None:
    layer = InProcessChannelLayer()
    channels = [await layer.new_channel() for _ in range(2000)]
    for channel in channels:
        await layer.group_add("crowd", channel)

    async def collect(channel: str) -> list[int]:
        return [(await layer.receive(channel))["n"] for _ in range(5)]

    collectors = [asyncio.ensure_future(collect(channel)) for channel in channels]
    await until(lambda: len(layer.buffers.waited_on()) == len(channels))
    for number in range(5):
        await layer.group_send("crowd", {"type": "n", "n": number})
    results = await asyncio.gather(*collectors)
    assert all(result == [0, 1, 2, 3, 4] for result in results)
    assert layer.state().delivered == 5 * 2000 and layer.buffers.waited_on() == set()

    # Several receivers on one channel: each message to one of them, oldest waiter first.
    shared = await layer.new_channel()
    receivers = [receiving(layer, shared) for _ in range(3)]
    await until(lambda: len(layer.buffers._waiters.get(shared, ())) == 3)
    for number in range(3):
        await layer.send(shared, {"type": "n", "n": number})
    assert [(await receiver)["n"] for receiver in receivers] == [0, 1, 2]


async def test_channels_own_layer_still_serves_an_app() -> None:
    async with GraphQLTestClient(BURST_APP, layer=InMemoryChannelLayer()) as client:
        async with client.subscribe(ROOM, {"room": "lobby"}) as room:
            assert (await room.next()).data == {"room": "listening"}
            assert (await client.execute(BURST, {"room": "lobby", "count": 2})).data == {"burst": 2}
            assert [(await room.next()).data["room"] for _ in range(2)] == ["lobby 0", "lobby 1"]


# -- through the real server ----------------------------------------------------------------


async def wait_for_metric(server: ServerProcess, name: str, value: float, **labels: str) -> None:
    """/metrics is refreshed from the layer every second: wait until it shows `value`."""
    deadline = time.monotonic() + 15
    while (seen := await asyncio.to_thread(metric, server, name, **labels)) != value:
        assert time.monotonic() < deadline, f"{name}{labels} is {seen}, expected {value}"
        await asyncio.sleep(0.1)


async def burst(server: ServerProcess, room: str, count: int, tag: str | None = None) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{server.url}/graphql", json={
            "query": BURST, "variables": {"room": room, "count": count, "tag": tag}})
    assert response.json() == {"data": {"burst": count}}


async def test_every_subscriber_gets_every_event_over_both_protocols() -> None:
    with ServerProcess(BURST_APP) as server:
        protocols = ["graphql-transport-ws", "graphql-ws"] * 20
        subscribers = [await Subscriber.open(server.ws_url, protocol) for protocol in protocols]
        try:
            for subscriber in subscribers:
                await subscriber.subscribe(ROOM, {"room": "lobby"})
                assert await subscriber.next_data() == {"room": "listening"}
            for round_ in range(10):  # bursts of 5, within the default capacity of 100
                await burst(server, "lobby", 5)
            expected = [f"lobby {number}" for number in range(5)] * 10
            for subscriber in subscribers:
                assert [(await subscriber.next_data())["room"] for _ in expected] == expected
        finally:
            await asyncio.gather(*(subscriber.close() for subscriber in subscribers))
        await wait_for_metric(server, "gqlchannels_layer_messages_total", 50, outcome="published")
        await wait_for_metric(server, "gqlchannels_layer_messages_total", 50 * 40, outcome="delivered")
        await wait_for_metric(server, "gqlchannels_layer_messages_total", 0, outcome="dropped")
        await wait_for_metric(server, "gqlchannels_layer_dropped_total", 0, reason="full")


async def test_a_full_channel_is_counted_in_metrics() -> None:
    with ServerProcess(BURST_APP, "--layer", "memory://?capacity=2") as server:
        subscribers = [await Subscriber.open(server.ws_url) for _ in range(3)]
        try:
            for subscriber in subscribers:
                await subscriber.subscribe(ROOM, {"room": "small"})
                assert await subscriber.next_data() == {"room": "listening"}
            # Ten messages at once: each listener's channel takes the first (its receiver was
            # waiting, or it is buffered) and holds two; the rest are refused for that listener.
            await burst(server, "small", 10)
            await burst(server, "small", 1, tag="end")  # a marker, sent once the burst is dealt with
            received = []
            for subscriber in subscribers:
                texts = []
                while (text := (await subscriber.next_data())["room"]) != "end 0":
                    texts.append(text)
                received.append(texts)
        finally:
            await asyncio.gather(*(subscriber.close() for subscriber in subscribers))
        for texts in received:
            # What arrived is the burst's beginning, in order; what did not was dropped.
            assert texts == [f"small {number}" for number in range(len(texts))] and 2 <= len(texts) <= 3
        dropped = sum(10 - len(texts) for texts in received)
        await wait_for_metric(server, "gqlchannels_layer_dropped_total", dropped, reason="full")
        await wait_for_metric(server, "gqlchannels_layer_messages_total", dropped, outcome="dropped")
        await wait_for_metric(server, "gqlchannels_layer_dropped_total", 0, reason="expired")


async def test_memberships_of_memory_layers_last_as_long_as_their_subscriptions() -> None:
    """A subscription open for days keeps receiving (Channels' layer ends memberships after a day)."""
    layer = parse_layer_url("memory://").make_layer()
    await layer.group_add("room", "specific.inprocess!1")
    layer.sweep(time.monotonic() + 3 * 86400)
    await layer.group_send("room", {"type": "m"})
    assert await asyncio.wait_for(layer.receive("specific.inprocess!1"), 5) == {"type": "m"}
