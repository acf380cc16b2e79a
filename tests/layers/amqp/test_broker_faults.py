"""The RabbitMQ layer against a real RabbitMQ node that the tests tamper with: its queue
deleted, its permissions taken away, publishers blocked by a memory alarm, the application
stopped, the Erlang VM killed. Each time the layer must notice at once, say why in one
line, refuse publishes at once while it knows the broker cannot take them, and come back
by itself, queue, consumer and every group binding included.

The node is the tests' own (tests/support/rabbit_node.py), never the shared one on 5672.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiormq
import pytest

from gqlchannels.layers.amqp import LayerUnavailable, RabbitMQChannelLayer
from tests.support.rabbit_node import RabbitNode
from tests.support.server import CHAT_APP, clean_env, free_port, run_cli
from tests.support.tcp_proxy import TCPProxy

FAST = {"heartbeat": 2, "reconnect_max_delay": 1.0, "publish_timeout": 5.0, "connect_timeout": 5.0}
KNOWN_DOWN_BOUND = 1.0  # s: generous for "at once" (measured well under 50 ms); publish_timeout is 5


def group() -> str:
    return f"fault-{uuid.uuid4().hex[:12]}"


@pytest.fixture()
async def layers() -> AsyncIterator[list[RabbitMQChannelLayer]]:
    made: list[RabbitMQChannelLayer] = []
    yield made
    for layer in made:
        await layer.close()


async def new_layer(made: list[RabbitMQChannelLayer], url: str, **options: object) -> RabbitMQChannelLayer:
    layer = RabbitMQChannelLayer(url=url, **{**FAST, **options})
    made.append(layer)
    await layer.connect(10)
    return layer


class Changes:
    """Every change of a layer's readiness, with its time, seen through its state listener."""

    def __init__(self, layer: RabbitMQChannelLayer) -> None:
        self.layer = layer
        self.seen: list[tuple[float, bool, str | None]] = []
        layer.add_state_listener(self._changed)

    def _changed(self) -> None:
        state = self.layer.state()
        self.seen.append((time.monotonic(), state.ready, state.reason))

    def first_unready_after(self, moment: float) -> float | None:
        return next((at for at, ready, _ in self.seen if at >= moment and not ready), None)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.01)


async def joined(layer: RabbitMQChannelLayer) -> tuple[str, str]:
    name, channel = group(), await layer.new_channel()
    await layer.group_add(name, channel)
    return name, channel


async def delivered(sender: RabbitMQChannelLayer, receiver: RabbitMQChannelLayer, name: str, channel: str) -> None:
    marker = uuid.uuid4().hex
    await sender.group_send(name, {"type": "probe", "marker": marker})
    assert await asyncio.wait_for(receiver.receive(channel), 10) == {"type": "probe", "marker": marker}


def amqp_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gqlchannels.amqp" and r.levelno >= logging.WARNING]


# 1. The broker takes the consumer away --------------------------------------------------


async def test_deleted_queue_is_noticed_rebuilt_and_rebound(healthy_node: RabbitNode, layers: list,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    receiver = await new_layer(layers, healthy_node.url())
    sender = await new_layer(layers, healthy_node.url())
    name, channel = await joined(receiver)
    other_name, _ = await joined(receiver)
    changes = Changes(receiver)
    caplog.clear()

    started = time.monotonic()
    await asyncio.to_thread(healthy_node.delete_queue, receiver.queue_name)
    deleted = time.monotonic()
    await wait_until(lambda: changes.first_unready_after(started) is not None, 5, "the deletion noticed")
    noticed = changes.first_unready_after(started)
    await wait_until(lambda: receiver.state().ready, 10, "the queue rebuilt")
    print(f"queue deletion noticed {noticed - deleted:+.3f} s after rabbitmqctl returned "
          f"(it took {deleted - started:.2f} s); ready again {time.monotonic() - deleted:.3f} s after")

    await delivered(sender, receiver, name, channel)
    assert (await asyncio.to_thread(healthy_node.queues))[receiver.queue_name] == 1  # one consumer again
    assert receiver.state().groups == 2 and receiver.state().reconnects == 1
    assert amqp_warnings(caplog) == [
        "channel layer lost its RabbitMQ connection (the broker cancelled the layer's consumer "
        "(its queue was deleted)); reconnecting",
        f"channel layer reconnected to RabbitMQ at {receiver.link.url.replace('guest:guest', 'guest:***')} "
        f"(queue {receiver.queue_name}, 2 group(s) bound)",
    ]


async def delete_exchange(url: str, name: str, *, declare_again: bool) -> None:
    """What an operator (or a cleanup script) does on the broker; `declare_again`: what any
    other replica's next reconnection then does, without the deleted bindings."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(name)
        if declare_again:
            await channel.exchange_declare(name, exchange_type="direct")
    finally:
        await connection.close()


async def test_exchange_deleted_and_declared_again_is_noticed_and_rebound(
        healthy_node: RabbitNode, layers: list, caplog: pytest.LogCaptureFixture) -> None:
    """Deleting the exchange takes every binding with it and nothing tells the queues: once it
    is declared again, publishes succeed and reach nobody. The layer's binding check finds
    out within its interval, rebuilds, and says that messages may have been missed."""
    exchange = f"groups-{uuid.uuid4().hex[:8]}"
    receiver = await new_layer(layers, healthy_node.url(), groups_exchange=exchange, binding_check_interval=0.5)
    sender = await new_layer(layers, healthy_node.url(), groups_exchange=exchange, binding_check_interval=0)
    name, channel = await joined(receiver)
    await delivered(sender, receiver, name, channel)
    caplog.clear()

    await delete_exchange(healthy_node.url(), exchange, declare_again=True)
    await wait_until(lambda: receiver.state().reconnects == 1 and receiver.state().ready, 10, "the loss noticed")
    await delivered(sender, receiver, name, channel)
    assert amqp_warnings(caplog)[0] == (
        f"channel layer lost its RabbitMQ connection (exchange {exchange!r} no longer routes to the layer's "
        "queue (the exchange was deleted and declared again, or the queue's bindings removed); messages "
        "published to its groups in the last 0.5 s may not have reached this process); reconnecting")


async def test_exchange_deleted_is_declared_again_and_rebound(healthy_node: RabbitNode, layers: list,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    exchange = f"groups-{uuid.uuid4().hex[:8]}"
    receiver = await new_layer(layers, healthy_node.url(), groups_exchange=exchange, binding_check_interval=0.5)
    sender = await new_layer(layers, healthy_node.url(), groups_exchange=exchange, binding_check_interval=0)
    name, channel = await joined(receiver)
    caplog.clear()

    await delete_exchange(healthy_node.url(), exchange, declare_again=False)
    await wait_until(lambda: receiver.state().reconnects == 1 and receiver.state().ready, 10, "the loss noticed")
    assert any(f"NOT_FOUND - no exchange '{exchange}'" in line for line in amqp_warnings(caplog)), amqp_warnings(caplog)
    await delivered(sender, receiver, name, channel)  # the receiver declared the exchange again


async def test_binding_checks_reach_no_subscriber_and_drop_nothing(healthy_node: RabbitNode, layers: list) -> None:
    receiver = await new_layer(layers, healthy_node.url(), binding_check_interval=0.1)
    name, channel = await joined(receiver)
    await asyncio.sleep(1)  # about ten checks through the broker
    assert receiver.state().reconnects == 0 and receiver.state().dropped == 0
    sender = await new_layer(layers, healthy_node.url())
    await delivered(sender, receiver, name, channel)  # the first message the receiver gets is this one


async def test_channel_closed_by_the_broker_is_rebuilt(healthy_node: RabbitNode, layers: list,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Write permission taken away: the broker refuses a publish by closing the AMQP channel."""
    receiver = await new_layer(layers, healthy_node.url())
    sender = await new_layer(layers, healthy_node.url())
    name, channel = await joined(receiver)
    caplog.clear()
    healthy_node.ctl("set_permissions", "-p", "/", "guest", ".*", "^$", ".*")
    try:
        with pytest.raises(LayerUnavailable, match="closed the channel it was sent on "
                                                   r"\(ACCESS_REFUSED - access to exchange 'groups'"):
            await sender.group_send(name, {"type": "refused"})
        await wait_until(lambda: any("closed the AMQP channel: ACCESS_REFUSED" in line
                                     for line in amqp_warnings(caplog)), 5, "the closed channel noticed")
    finally:
        healthy_node.ctl("set_permissions", "-p", "/", "guest", ".*", ".*", ".*")
    await wait_until(lambda: sender.state().ready, 10, "the sender's channel rebuilt")
    await delivered(sender, receiver, name, channel)


async def test_blocked_publishers_fail_at_once_and_resume(healthy_node: RabbitNode, layers: list) -> None:
    # The broker blocks a connection when it publishes during an alarm, a binding check too:
    # the receiver here never publishes at all.
    receiver = await new_layer(layers, healthy_node.url(), binding_check_interval=0)
    sender = await new_layer(layers, healthy_node.url())
    name, channel = await joined(receiver)
    healthy_node.block_publishers()
    try:
        # The broker blocks a connection when it next publishes: that first message waits for
        # the alarm to clear, and its publisher cannot know whether it will be delivered.
        with pytest.raises(LayerUnavailable, match="did not confirm it within 5 s; it may or may not be delivered"):
            await sender.group_send(name, {"type": "held", "n": 1})
        assert not sender.state().ready
        assert sender.state().reason == f"RabbitMQ at 127.0.0.1:{healthy_node.port} is blocking publishers (memory alarm)"
        started = time.monotonic()
        with pytest.raises(LayerUnavailable, match="is blocking publishers"):
            await sender.group_send(name, {"type": "refused"})
        print(f"publish while blocked failed in {(time.monotonic() - started) * 1000:.1f} ms")
        assert time.monotonic() - started < KNOWN_DOWN_BOUND
        assert receiver.state().ready  # it never published: the broker did not block it
    finally:
        healthy_node.unblock_publishers()
    await wait_until(lambda: sender.state().ready, 10, "publishing unblocked")
    assert await asyncio.wait_for(receiver.receive(channel), 10) == {"type": "held", "n": 1}  # it was, in the end
    await delivered(sender, receiver, name, channel)


@pytest.mark.parametrize("fault", ["stop_app", "kill -9"])
async def test_node_down_is_known_publishes_fail_at_once_and_all_resumes(
        healthy_node: RabbitNode, layers: list, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    receiver = await new_layer(layers, healthy_node.url())
    sender = await new_layer(layers, healthy_node.url())
    name, channel = await joined(receiver)
    changes = Changes(receiver)
    caplog.clear()

    started = time.monotonic()
    if fault == "stop_app":
        await asyncio.to_thread(healthy_node.ctl, "stop_app")
    else:
        await asyncio.to_thread(healthy_node.kill)
    done = time.monotonic()
    # Right after a kill, an attempt may meet the dying node (reset) before the refusals.
    await wait_until(lambda: "connection refused" in (sender.state().reason or ""), 5, "the refusal known")
    # The receiver's layer notices on its own connection, perhaps a moment after the sender's.
    await wait_until(lambda: changes.first_unready_after(started) is not None, 5, "the receiver's notice")
    print(f"{fault}: noticed {changes.first_unready_after(started) - done:+.3f} s after the command returned")

    latencies = []
    for _ in range(20):
        at = time.monotonic()
        with pytest.raises(LayerUnavailable) as refused:
            await sender.group_send(name, {"type": "during"})
        latencies.append(time.monotonic() - at)
    assert str(refused.value) == (f"could not publish to group {name!r}: connection refused at "
                                  f"127.0.0.1:{healthy_node.port} (is RabbitMQ running and listening there?)")
    latencies.sort()
    print(f"publish during the outage: p50 {latencies[10] * 1000:.2f} ms, max {latencies[-1] * 1000:.2f} ms")
    assert latencies[-1] < KNOWN_DOWN_BOUND

    await asyncio.to_thread(healthy_node.ensure_healthy)
    await wait_until(lambda: receiver.state().ready and sender.state().ready, 20, "both reconnected")
    await delivered(sender, receiver, name, channel)  # the binding came back with the queue
    # One line per change of state and per layer, however long the outage and however many
    # attempts: lost, cannot reach (a kill may show a reset before the refusals), reconnected.
    kinds = [line.split(" (")[0].split(": ")[0] for line in amqp_warnings(caplog)]
    assert kinds.count("channel layer lost its RabbitMQ connection") == 2, kinds
    assert 2 <= kinds.count("channel layer cannot reach RabbitMQ") <= 4, kinds
    assert kinds.count(f"channel layer reconnected to RabbitMQ at amqp://guest:***@127.0.0.1:{healthy_node.port}/?heartbeat=2&name=gqlchannels+{socket.gethostname()}+pid+{os.getpid()}") == 2, kinds
    assert len(kinds) == 2 + kinds.count("channel layer cannot reach RabbitMQ") + 2, kinds
    assert all(record.exc_info is None for record in caplog.records if record.name.startswith("gqlchannels"))


async def test_a_message_to_a_process_that_is_gone_is_counted(healthy_node: RabbitNode,
                                                               layers: list) -> None:
    gone = await new_layer(layers, healthy_node.url())
    channel = await gone.new_channel()
    await gone.close()  # its queue goes with its connection
    sender = await new_layer(layers, healthy_node.url())
    await sender.send(channel, {"type": "x"})  # returned by the broker (mandatory): nobody can receive it
    assert sender.state().dropped == 1


# 2. Nothing left behind ----------------------------------------------------------------------


def unseen_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """asyncio's reports, in this test's event loop (not the proxy's thread), of futures and
    tasks that failed or were dropped without anyone looking."""
    gc.collect()
    return [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno >= logging.ERROR and r.thread == threading.get_ident()]


async def test_publishes_cut_by_an_outage_leave_no_failure_unseen(healthy_node: RabbitNode, layers: list,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    sender = await new_layer(layers, healthy_node.url())
    running = True
    outcomes: dict[str, int] = {}

    async def publish_until_stopped() -> None:
        while running:
            try:
                await sender.group_send(group(), {"type": "x", "padding": "x" * 1000})
                outcome = "published"
            except LayerUnavailable as exc:
                outcome = str(exc).split(": ", 1)[1].split(" (")[0]
                await asyncio.sleep(0.01)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    publishers = [asyncio.create_task(publish_until_stopped()) for _ in range(50)]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(healthy_node.ctl, "stop_app")  # mid-publish, for many of them
    await asyncio.sleep(0.5)
    await asyncio.to_thread(healthy_node.ensure_healthy)
    await wait_until(lambda: sender.state().ready, 20, "reconnected")
    await asyncio.sleep(0.5)
    running = False
    await asyncio.gather(*publishers)
    print(outcomes)
    assert outcomes["published"] > 0 and len(outcomes) > 1
    assert unseen_failures(caplog) == []


def others() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


async def tasks_settle_to(count: int, within: float = 5.0) -> bool:
    """Whether the loop's tasks come back to `count`: aiormq 7 ends a closed connection's
    futures in tasks of its own, which finish a few loop turns after close() returns; a task
    left behind for good never does."""
    deadline = asyncio.get_running_loop().time() + within
    while len(asyncio.all_tasks()) != count and asyncio.get_running_loop().time() < deadline:
        gc.collect()
        await asyncio.sleep(0.01)
    return len(asyncio.all_tasks()) == count


async def test_timeouts_cancellations_and_close_leave_no_task_behind(healthy_node: RabbitNode,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    # A broker that accepts TCP and never answers: the link cannot know yet, so publishes
    # wait up to publish_timeout (the only case where they wait).
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        before = len(asyncio.all_tasks())
        layer = RabbitMQChannelLayer(url=f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/",
                                     **{**FAST, "publish_timeout": 0.3, "connect_timeout": 30})
        name = group()
        outcomes = await asyncio.gather(*(layer.group_send(name, {"type": "x"}) for _ in range(100)),
                                        *(asyncio.wait_for(layer.group_send(name, {"type": "x"}), 0.05)
                                          for _ in range(100)), return_exceptions=True)
        assert {type(outcome) for outcome in outcomes} == {LayerUnavailable, TimeoutError}
        await layer.close()
        assert await tasks_settle_to(before), others()
    finally:
        silent.close()

    # Connected, then the broker hangs (nothing flows): publishes written, no confirmation.
    with TCPProxy(upstream_port=healthy_node.port) as proxy:
        before = len(asyncio.all_tasks())
        layer = RabbitMQChannelLayer(url=proxy.url(), **{**FAST, "publish_timeout": 0.3})
        await layer.connect(10)
        proxy.pause()
        outcomes = await asyncio.gather(*(layer.group_send(name, {"type": "x"}) for _ in range(100)),
                                        *(asyncio.wait_for(layer.group_send(name, {"type": "x"}), 0.05)
                                          for _ in range(100)), return_exceptions=True)
        assert {type(outcome) for outcome in outcomes} <= {LayerUnavailable, TimeoutError}
        await layer.close()
        assert await tasks_settle_to(before), others()
        proxy.restore()
    assert unseen_failures(caplog) == []


# 3. Errors that say what is wrong -------------------------------------------------------------


def test_wrong_password_is_named_by_check_publish_and_the_library(healthy_node: RabbitNode) -> None:
    url = healthy_node.url(password="not-the-password")
    refused = (f"RabbitMQ at 127.0.0.1:{healthy_node.port} refused the credentials of user 'guest' "
               "(wrong user name or password)")
    check = run_cli("check", CHAT_APP, "--layer", url)
    assert check.returncode == 1
    assert check.stderr.strip() == f"Error: the channel layer cannot reach its broker: {refused}"
    published = run_cli("publish", "room", "{}", "--type", "t", "--layer", url)
    assert published.returncode == 1
    assert published.stderr.strip() == f"Error: could not publish to group 'room': {refused}"
    library = library_publish(url)
    assert library.splitlines()[-1].startswith(f"LayerUnavailable: could not publish to group 'room': {refused} in ")
    assert "not-the-password" not in check.stderr + published.stderr + library


def test_refused_connection_is_named_at_once() -> None:
    port = free_port()  # nothing listens there
    url = f"amqp://guest:guest@127.0.0.1:{port}/?publish_timeout=10"
    refused = f"connection refused at 127.0.0.1:{port} (is RabbitMQ running and listening there?)"
    check = run_cli("check", CHAT_APP, "--layer", url, "--timeout", "10")
    assert check.stderr.strip() == f"Error: the channel layer cannot reach its broker: {refused}"
    last = library_publish(url).splitlines()[-1]
    assert last.startswith(f"LayerUnavailable: could not publish to group 'room': {refused} in ")
    seconds = float(last.rsplit(" in ", 1)[1].removesuffix(" s"))
    assert seconds < 3  # not publish_timeout (10 s): the refusal is known after one attempt


def library_publish(url: str) -> str:
    """gqlchannels.publish() from a fresh process: the exception's type, message and duration."""
    code = textwrap.dedent(f"""
        import time, gqlchannels
        started = time.monotonic()
        try:
            gqlchannels.publish("room", {{"type": "t"}}, layer_url={url!r}, timeout=20)
        except Exception as exc:
            print(f"{{type(exc).__name__}}: {{exc}} in {{time.monotonic() - started:.3f}} s")
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=clean_env()).stdout.strip()
