"""The RabbitMQ layer against the real broker, with faults made by a TCP proxy the test
controls: cancellations, outages, bad messages, slow receivers, bursts, shutdown."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiormq
import msgpack
import pytest

from gqlchannels.errors import InvalidName
from gqlchannels.layers.amqp import LayerUnavailable, MessageNotSerializable, RabbitMQChannelLayer
from tests.support.channels_rabbitmq_peer import ChannelsRabbitmqPeer, peer_python
from tests.support.tcp_proxy import TCPProxy

BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
FAST = {"heartbeat": 2, "reconnect_max_delay": 1.0, "publish_timeout": 2.0, "connect_timeout": 2.0}


def group() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def proxy(amqp_url: str) -> Iterator[TCPProxy]:
    with TCPProxy() as running:
        yield running


def layer_url(proxy: TCPProxy) -> str:
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"


@pytest.fixture()
async def layers(proxy: TCPProxy) -> AsyncIterator[list[RabbitMQChannelLayer]]:
    made: list[RabbitMQChannelLayer] = []
    yield made
    for layer in made:
        await layer.close()


async def new_layer(made: list[RabbitMQChannelLayer], url: str, **options: object) -> RabbitMQChannelLayer:
    layer = RabbitMQChannelLayer(url=url, **{**FAST, **options})
    made.append(layer)
    await layer.connect(5)
    return layer


async def round_trip(sender: RabbitMQChannelLayer, receiver: RabbitMQChannelLayer, timeout: float = 10) -> None:
    name, channel = group(), await receiver.new_channel()
    await receiver.group_add(name, channel)
    await sender.group_send(name, {"type": "ping", "id": name})
    assert (await asyncio.wait_for(receiver.receive(channel), timeout)) == {"type": "ping", "id": name}
    await receiver.group_discard(name, channel)


async def wait_until(predicate, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# 1. Cancelled callers ---------------------------------------------------------------


async def test_cancelled_calls_leave_the_layer_working(proxy: TCPProxy, layers: list) -> None:
    layer = await new_layer(layers, layer_url(proxy))
    channel = await layer.new_channel()
    for _ in range(50):  # time out or cancel every kind of call mid-flight
        for call in (layer.group_send(group(), {"type": "x"}), layer.group_add(group(), channel),
                     layer.send(channel, {"type": "x"}), layer.group_discard(group(), channel)):
            task = asyncio.ensure_future(call)
            await asyncio.sleep(0)
            task.cancel()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.group_send(group(), {"type": "x"}), 0.00001)
    await round_trip(layer, layer)
    assert layer.state().connected


async def test_timeout_during_outage_does_not_poison_later_calls(proxy: TCPProxy, layers: list) -> None:
    layer = await new_layer(layers, layer_url(proxy))
    proxy.refuse()
    proxy.cut()
    with pytest.raises((TimeoutError, LayerUnavailable)):
        await asyncio.wait_for(layer.group_send(group(), {"type": "x"}), 0.2)
    proxy.restore()
    await wait_until(lambda: layer.state().connected, 15)
    await round_trip(layer, layer)


# 2. Outages -------------------------------------------------------------------------


async def test_outage_publish_fails_fast_and_subscriptions_resume(proxy: TCPProxy, layers: list) -> None:
    receiver = await new_layer(layers, layer_url(proxy))
    sender = await new_layer(layers, BROKER)  # the other side stays connected
    name, channel = group(), await receiver.new_channel()
    await receiver.group_add(name, channel)

    proxy.refuse()
    proxy.cut()
    await wait_until(lambda: not receiver.state().connected, 10)
    started = time.monotonic()
    with pytest.raises(LayerUnavailable, match="could not publish to group"):
        await receiver.group_send(name, {"type": "x"})
    assert time.monotonic() - started < 5  # publish_timeout is 2 s
    await asyncio.sleep(1.5)  # an outage of some length, with retries refused

    proxy.restore()
    restored = time.monotonic()
    await wait_until(lambda: receiver.state().connected, 15)
    await sender.group_send(name, {"type": "after", "n": 1})
    assert await asyncio.wait_for(receiver.receive(channel), 10) == {"type": "after", "n": 1}
    print(f"resumed {time.monotonic() - restored:.2f} s after the broker came back")
    state = receiver.state()
    assert state.reconnects == 1 and state.groups == 1


async def test_thousands_of_groups_rebound_after_reconnect(proxy: TCPProxy, layers: list) -> None:
    receiver = await new_layer(layers, layer_url(proxy))
    sender = await new_layer(layers, BROKER)
    channel = await receiver.new_channel()
    names = [group() for _ in range(3000)]  # more than the broker's channel_max (2047)
    for name in names:
        await receiver.group_add(name, channel)
    started = time.monotonic()
    proxy.cut()
    await wait_until(lambda: receiver.state().reconnects == 1 and receiver.state().connected, 30)
    await sender.group_send(names[-1], {"type": "last"})
    await sender.group_send(names[0], {"type": "first"})
    received = {(await asyncio.wait_for(receiver.receive(channel), 30))["type"] for _ in range(2)}
    assert received == {"first", "last"}
    print(f"3000 groups re-bound and delivering {time.monotonic() - started:.2f} s after the cut")


async def test_hung_broker_detected_by_heartbeat(proxy: TCPProxy, layers: list) -> None:
    layer = await new_layer(layers, layer_url(proxy))
    proxy.pause()  # nothing flows, nothing closes: only heartbeats can tell
    await wait_until(lambda: not layer.state().connected, 15)
    proxy.restore()
    await wait_until(lambda: layer.state().connected, 15)
    await round_trip(layer, layer)


async def test_publishes_in_flight_when_the_layer_reconnects_fail_as_maybe_delivered(layers: list) -> None:
    """Reconnecting closes the AMQP connection, and aiormq rejects the publishes still waiting
    for the broker's confirmation with a CancelledError. A caller must get LayerUnavailable
    saying the message may have been delivered, never a cancellation it did not ask for: in a
    mutation that was an HTTP 500 with an ERROR traceback. A group_add in flight is bound by the
    new connection, as during an outage, and returns."""
    layer = await new_layer(layers, BROKER)
    maybe_delivered = 0
    for _ in range(20):  # until some publish was caught waiting for its confirmation
        channel = await layer.new_channel()
        sends = [asyncio.ensure_future(layer.group_send(group(), {"type": "x"})) for _ in range(200)]
        adds = [asyncio.ensure_future(layer.group_add(group(), channel)) for _ in range(50)]
        for _ in range(3):
            await asyncio.sleep(0)
        layer.link.fault("the test reconnects with publishes in flight")
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        unexpected = [o for o in outcomes if o is not None and not isinstance(o, LayerUnavailable)]
        assert not unexpected, unexpected[:3]
        assert await asyncio.gather(*adds, return_exceptions=True) == [None] * len(adds)  # bound on reconnect
        maybe_delivered += sum("may or may not be delivered" in str(o) for o in outcomes)
        await wait_until(lambda: layer.state().connected, 15)
        if maybe_delivered:
            break
    assert maybe_delivered, "no publish was waiting for its confirmation when the layer reconnected"
    await round_trip(layer, layer)


# 3. Messages that cannot be decoded or encoded ------------------------------------------


async def test_undecodable_messages_dropped_and_reader_keeps_going(proxy: TCPProxy, layers: list,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    layer = await new_layer(layers, BROKER)
    channel = await layer.new_channel()
    connection = await aiormq.connect(BROKER)
    try:
        raw = await connection.channel()
        for body in (b"\xc1 not msgpack", msgpack.packb([1, 2]), msgpack.packb({"type": "x"}),
                     msgpack.packb({1: "non-string key", "__asgi_channel__": channel})):
            await raw.basic_publish(body, routing_key=layer.queue_name)
    finally:
        await connection.close()
    await layer.send(channel, {"type": "good"})
    # The non-string-key message decodes (it killed channels-rabbitmq's reader), then the good one.
    assert (await asyncio.wait_for(layer.receive(channel), 10)) == {1: "non-string key"}
    assert (await asyncio.wait_for(layer.receive(channel), 10)) == {"type": "good"}
    assert layer.state().dropped == 3
    assert len([r for r in caplog.records if "cannot be decoded" in r.getMessage()]) == 1  # logged once


async def test_unencodable_message_refused_before_sending(layers: list, amqp_url: str) -> None:
    layer = await new_layer(layers, BROKER)
    with pytest.raises(MessageNotSerializable, match=r"message\['at'\] is a datetime.datetime"):
        await layer.group_send(group(), {"type": "x", "at": datetime.datetime(2026, 1, 1)})
    with pytest.raises(MessageNotSerializable, match="has the key 7 of type int"):
        await layer.group_send(group(), {"type": "x", "nested": {7: "x"}})
    assert layer.state().published == 0


async def test_names_over_the_limit_are_clear_errors(layers: list, amqp_url: str) -> None:
    layer = await new_layer(layers, BROKER)
    channel = await layer.new_channel()
    with pytest.raises(InvalidName, match="group name 'gggg.*at most 99|1 to 99"):
        await layer.group_add("g" * 100, channel)
    with pytest.raises(InvalidName, match="channel name"):
        await layer.send("no-process-part", {"type": "x"})
    await layer.group_add("g" * 99, channel)  # at the limit: fine


async def test_receiving_on_a_channel_that_is_not_ours_is_a_clear_error(layers: list, amqp_url: str) -> None:
    """Raised on awaiting, as from any coroutine, before and after a good channel's receives."""
    layer, other = await new_layer(layers, BROKER), await new_layer(layers, BROKER)
    assert asyncio.iscoroutinefunction(layer.receive)  # what Channels and asgiref check for
    theirs, ours = await other.new_channel(), await layer.new_channel()
    pending = layer.receive("no-process-part!x" * 10)  # not raised yet: only when awaited
    with pytest.raises(InvalidName, match="channel name"):
        await pending
    with pytest.raises(RuntimeError, match="belongs to another process"):
        await layer.receive(theirs)
    await layer.send(ours, {"type": "one"})
    await layer.send(ours, {"type": "two"})
    assert [(await asyncio.wait_for(layer.receive(ours), 10))["type"] for _ in range(2)] == ["one", "two"]
    with pytest.raises(RuntimeError, match="belongs to another process"):
        await layer.receive(theirs)


# 4. Slow receivers, 8. bursts -----------------------------------------------------------


async def test_receiver_that_never_reads_stalls_nobody(layers: list, amqp_url: str) -> None:
    layer = await new_layer(layers, BROKER, local_capacity=50)
    name = group()
    stuck, reader = await layer.new_channel(), await layer.new_channel()
    await layer.group_add(name, stuck)
    await layer.group_add(name, reader)
    for n in range(300):
        await layer.group_send(name, {"type": "n", "n": n})
        assert (await asyncio.wait_for(layer.receive(reader), 10))["n"] == n  # every one, in order
    # The stuck one keeps only its newest 50 and the loss is counted.
    assert layer.state().dropped == 250
    assert [(await layer.receive(stuck))["n"] for _ in range(50)] == list(range(250, 300))


async def test_burst_is_delivered_or_counted(layers: list, amqp_url: str) -> None:
    receiver = await new_layer(layers, BROKER, local_capacity=100, remote_capacity=500)
    # All 5000 wait for the channel at once: on a loaded 2-core machine the last ones can wait
    # longer than FAST's 2 s, and this test is about counting, not publish_timeout.
    sender = await new_layer(layers, BROKER, publish_timeout=60)
    name, channel = group(), await receiver.new_channel()
    await receiver.group_add(name, channel)
    await asyncio.gather(*(sender.group_send(name, {"type": "b", "n": n}) for n in range(5000)))
    sent = sender.state()
    assert sent.published + sent.dropped == 5000  # refused by a full queue: counted, not silent
    await wait_until(lambda: receiver.state().dropped + 100 >= sent.published, 20)
    held = []
    while True:
        try:
            held.append(await asyncio.wait_for(receiver.receive(channel), 0.5))
        except TimeoutError:
            break
    assert len(held) + receiver.state().dropped == sent.published
    print(f"burst of 5000: {sent.published} taken by the broker, {sent.dropped} refused (counted), "
          f"{len(held)} held, {receiver.state().dropped} dropped oldest (counted)")


# 5. Backoff, logs, shutdown ---------------------------------------------------------------


def test_reconnect_delays_have_full_jitter_and_a_cap() -> None:
    from gqlchannels.layers.amqp.link import BrokerLink

    async def nothing(channel: object) -> None:
        return None

    link = BrokerLink("amqp://x", connect_timeout=1, reconnect_max_delay=4.0, on_connected=nothing)
    link.state.attempts = 10
    delays = [link._next_delay() for _ in range(500)]
    assert max(delays) <= 4.0 and min(delays) >= 0
    assert len({round(d, 2) for d in delays}) > 100  # spread out, not a stampede
    link.state.attempts = 1
    assert max(link._next_delay() for _ in range(100)) <= 0.5


async def test_outage_logs_one_line_per_state_change_and_close_is_bounded(
        proxy: TCPProxy, layers: list, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gqlchannels.amqp")
    layer = await new_layer(layers, layer_url(proxy), reconnect_max_delay=0.3)
    caplog.clear()
    proxy.refuse()
    proxy.cut()
    await asyncio.sleep(3)  # about ten refused attempts
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == [
        "channel layer lost its RabbitMQ connection",
        f"channel layer cannot reach RabbitMQ: cannot connect to 127.0.0.1:{proxy.port}",
    ]
    assert all(r.exc_info is None for r in caplog.records)  # no tracebacks
    started = time.monotonic()
    await layer.close()  # mid-outage
    assert time.monotonic() - started < 4


async def test_connection_name_and_heartbeat_at_the_broker(layers: list, amqp_url: str) -> None:
    import subprocess

    layer = await new_layer(layers, BROKER, connection_name=f"gqlchannels-test-{uuid.uuid4().hex[:6]}", heartbeat=7)
    out = await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "list_connections", "client_properties",
                                                    "timeout"], capture_output=True, text=True, timeout=30)
    line = next(line for line in out.stdout.splitlines() if layer.link.url.split("name=")[1] in line.replace(" ", "+"))
    assert line.rstrip().endswith("7")


# 7. State, and interoperability with plain channels-rabbitmq ------------------------------


@pytest.fixture(scope="module")
def channels_rabbitmq_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with channels-rabbitmq 4.0.1, which cannot share this environment (pamqp 3);
    kept in pytest's cache between runs (made afresh when run with -p no:cacheprovider)."""
    cache = getattr(request.config, "cache", None)
    return peer_python(cache.mkdir("channels-rabbitmq-venv") if cache else tmp_path_factory.mktemp("peer-venv"))


async def test_interoperates_with_channels_rabbitmq(layers: list, amqp_url: str, channels_rabbitmq_python: Path,
                                                    tmp_path: Path) -> None:
    ours = await new_layer(layers, BROKER)
    async with ChannelsRabbitmqPeer(channels_rabbitmq_python, BROKER, tmp_path / "peer.log") as theirs:
        assert theirs.versions["channels-rabbitmq"] == "4.0.1"  # the real library, in its own process
        name = group()
        our_channel, their_channel = await ours.new_channel(), await theirs.new_channel()
        await ours.group_add(name, our_channel)
        await theirs.group_add(name, their_channel)
        await theirs.group_send(name, {"type": "from.theirs", "n": 1})
        await ours.group_send(name, {"type": "from.ours", "n": 2})
        assert {(await asyncio.wait_for(ours.receive(our_channel), 10))["type"] for _ in range(2)} == {
            "from.theirs", "from.ours"}
        assert {(await theirs.receive(their_channel, 10))["type"] for _ in range(2)} == {"from.theirs", "from.ours"}
        await ours.send(their_channel, {"type": "direct.to.theirs"})
        await theirs.send(our_channel, {"type": "direct.to.ours"})
        assert (await theirs.receive(their_channel, 10)) == {"type": "direct.to.theirs"}
        assert (await asyncio.wait_for(ours.receive(our_channel), 10)) == {"type": "direct.to.ours"}
        state = ours.state()
        assert state.published == 2 and state.delivered == 3 and state.connected


async def test_layer_refuses_a_second_event_loop(layers: list, amqp_url: str) -> None:
    layer = await new_layer(layers, BROKER)

    def other_loop() -> str:
        try:
            asyncio.run(layer.group_send(group(), {"type": "x"}))
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "belongs to another event loop" in await asyncio.to_thread(other_loop)


# 6. TLS ----------------------------------------------------------------------------------


async def test_amqps_through_a_tls_terminating_proxy(layers: list, amqp_url: str, tmp_path) -> None:  # noqa: ANN001
    import ssl

    import trustme

    from gqlchannels.config.layer_url import parse_layer_url

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    with TCPProxy(tls=server_context) as tls_proxy:
        spec = parse_layer_url(f"amqps://guest:guest@localhost:{tls_proxy.port}/?cafile={ca_file}")
        layer = RabbitMQChannelLayer(**{**FAST, **spec.config})
        layers.append(layer)
        await layer.connect(5)
        await round_trip(layer, layer)
        assert tls_proxy.connections_made == 1
        await layer.close()
