"""The RabbitMQ channel layer behind `amqp://` and `amqps://` URLs.

Same wire format and broker objects as channels-rabbitmq 4.0.1 (a direct exchange "groups",
one exclusive queue `channels_<12 letters>` per process, msgpack bodies), so processes on
either layer exchange messages; built on aiormq instead of carehare, because the ways
channels-rabbitmq dies (DESIGN.md) are in carehare's futures and its reader loop:

- callers never share a connection future: broker operations run in their own task, each
  bounded by a timeout, and a cancelled caller leaves them to finish (#1, #2);
- a message that does not decode is dropped and counted, the reader goes on (#3);
- re-binding after a reconnect uses one AMQP channel, so thousands of groups do not need
  thousands of channels, and a failure is retried with the connection, not fatal (#4);
- TLS options need amqps:// (refused at parse time), the heartbeat is explicit (#5, #7);
- every receiver has its own bounded buffer that drops its oldest messages, so one that
  never reads stalls nobody (#6); publishing waits at most `publish_timeout` during an
  outage and then raises LayerUnavailable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import socket
import string
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlencode

import aiormq
from asgiref.sync import markcoroutinefunction
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from ..errors import LayerUnavailable
from ..messages import check_channel, check_group
from .buffers import ChannelBuffers
from .link import BrokerLink
from .wire import Undecodable, decode, encode

logger = logging.getLogger("gqlchannels.amqp")

SWEEP_INTERVAL = 10.0  # seconds between sweeps of buffers nobody reads
DROP_LOG_INTERVAL = 10.0  # at most one "messages dropped" line per this many seconds


@dataclasses.dataclass(frozen=True)
class LayerState:
    """What /readyz and /metrics report about the layer."""

    connected: bool
    since: float  # wall time of the last change of `connected`
    reconnects: int
    published: int
    delivered: int
    dropped: int
    groups: int  # groups this process is bound to
    last_error: str | None


def _random_letters(count: int) -> str:
    return "".join(random.choice(string.ascii_letters) for _ in range(count))


def default_connection_name() -> str:
    return f"gqlchannels {socket.gethostname()} pid {os.getpid()}"


class RabbitMQChannelLayer(BaseChannelLayer):
    extensions = ["groups"]

    def __init__(
        self,
        url: str,
        local_capacity: int = 100,
        remote_capacity: int = 1000,
        expiry: float = 60,
        local_expiry: float | None = 60,
        groups_exchange: str = "groups",
        publish_timeout: float = 2.0,
        connect_timeout: float = 5.0,
        heartbeat: int = 30,
        connection_name: str | None = None,
        reconnect_max_delay: float = 5.0,
        **tls: str,
    ) -> None:
        super().__init__(expiry=int(expiry), capacity=local_capacity)
        self.remote_capacity = remote_capacity
        self.message_ttl = expiry
        self.groups_exchange = groups_exchange
        self.publish_timeout = publish_timeout
        self.queue_name = f"channels_{_random_letters(12)}"
        self.buffers = ChannelBuffers(local_capacity, local_expiry)
        self.members: dict[str, set[str]] = {}  # group -> channels of this process
        self._receiving: set[str] = set()  # channels received on since the last sweep, already checked
        self.published = 0
        self.dropped_at_broker = 0
        self.undecodable = 0
        self._reported_drops = 0
        self._last_drop_log = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        query = {"heartbeat": str(heartbeat), "name": connection_name or default_connection_name(), **tls}
        self.link = BrokerLink(
            f"{url}?{urlencode(query)}", connect_timeout=connect_timeout,
            reconnect_max_delay=reconnect_max_delay, on_connected=self._set_up,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def _start(self) -> None:
        """Bind to the running loop on first use and start the connection there."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this RabbitMQ channel layer belongs to another event loop; make one layer per "
                "loop (gqlchannels.publish() does that for code outside the server)."
            )
        if not self._closed:
            self.link.start()
            if self._sweeper is None:
                self._sweeper = loop.create_task(self._sweep_forever(), name="gqlchannels-amqp-sweep")

    async def connect(self, timeout: float) -> None:
        """Wait for the first connection; LayerUnavailable after `timeout` seconds."""
        self._start()
        await self.link.channel(timeout)

    async def close(self) -> None:
        """Stop: within a few seconds, whether the broker is up or not."""
        self._closed = True
        self.buffers.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.link.close()

    def state(self) -> LayerState:
        link = self.link.state
        return LayerState(
            connected=link.connected, since=link.since, reconnects=link.reconnects,
            published=self.published, delivered=self.buffers.delivered,
            dropped=self.buffers.dropped + self.dropped_at_broker + self.undecodable,
            groups=len(self.members), last_error=link.last_error,
        )

    async def _set_up(self, channel: Any) -> None:
        """On every (re)connection: exchange, queue, consumer, then every group's binding."""
        await channel.exchange_declare(self.groups_exchange, exchange_type="direct")
        arguments: dict[str, Any] = {"x-max-length": self.remote_capacity, "x-overflow": "reject-publish"}
        if self.message_ttl:
            arguments["x-message-ttl"] = int(self.message_ttl * 1000)
        await channel.queue_declare(self.queue_name, exclusive=True, arguments=arguments)
        await channel.basic_consume(self.queue_name, self._on_message, no_ack=True)
        # Groups joined or left while we bind are caught by the next round; the link marks
        # itself ready right after the last round, with no await in between, so from then
        # on group_add and group_discard bind for themselves.
        # One AMQP channel for all of them (channels-rabbitmq's gather opened one per group and
        # died past the broker's channel_max of 2047). Not nowait: aiormq 6 waits for a reply
        # to a nowait bind that never comes. On loopback 3,000 binds take about a second.
        bound: set[str] = set()
        while bound != self.members.keys():
            for group in self.members.keys() - bound:
                await channel.queue_bind(self.queue_name, self.groups_exchange, routing_key=group)
                bound.add(group)
            for group in bound - self.members.keys():
                await channel.queue_unbind(self.queue_name, self.groups_exchange, routing_key=group)
                bound.discard(group)
        if bound:
            logger.info("channel layer bound %d group(s) to queue %s", len(bound), self.queue_name)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.buffers.sweep()
            self._receiving = self.buffers.waited_on()
            self._log_drops()

    # -- receiving ---------------------------------------------------------------------

    async def _on_message(self, delivered: Any) -> None:
        try:
            channel, group, message = decode(delivered.body)
        except Undecodable as exc:
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                logger.warning("dropped a message that cannot be decoded (%s); %d so far", exc, self.undecodable)
            return
        if channel is not None:
            self.buffers.put(channel, message)
        else:
            for member in list(self.members.get(group, ())):
                self.buffers.put(member, dict(message))
        self._log_drops()

    def _log_drops(self) -> None:
        dropped = self.buffers.dropped + self.dropped_at_broker
        now = time.monotonic()
        if dropped > self._reported_drops and now - self._last_drop_log >= DROP_LOG_INTERVAL:
            logger.warning("channel layer dropped %d message(s) for receivers too slow to keep up (%d in all)",
                           dropped - self._reported_drops, dropped)
            self._reported_drops, self._last_drop_log = dropped, now

    @markcoroutinefunction
    def receive(self, channel: str) -> Awaitable[dict[str, Any]]:
        # A subscription receives on the same channel for every message: its name is checked
        # (and the connection started) on the first receive, not on each of them. The sweep
        # forgets channels nobody receives on any more. Once checked, the buffer's awaitable
        # is returned as it is (a tail call): no frame of this method waits with each idle
        # subscription (about 260 bytes each).
        if channel in self._receiving:
            return self.buffers.get(channel)
        return self._receive_unchecked(channel)

    async def _receive_unchecked(self, channel: str) -> dict[str, Any]:
        check_channel(channel)  # raised on awaiting, as from any coroutine
        if not channel.startswith(self.queue_name + "!"):
            raise RuntimeError(f"channel {channel!r} belongs to another process; receive only on your own channels")
        self._start()
        self._receiving.add(channel)
        return await self.buffers.get(channel)

    async def new_channel(self, prefix: str = "specific") -> str:
        self._start()
        return f"{self.queue_name}!{_random_letters(12)}"

    # -- sending -----------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        check_channel(channel)
        body = encode(message, channel=channel)
        if await self._publish("", channel.split("!", 1)[0], body, f"channel {channel!r}") is False:
            raise ChannelFull(f"channel {channel!r} is full")

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        check_group(group)
        body = encode(message, group=group)
        if await self._publish(self.groups_exchange, group, body, f"group {group!r}") is False:
            # At most once, as the Channels spec asks of a full group, but never silently.
            self.dropped_at_broker += 1
            self._log_drops()

    async def _publish(self, exchange: str, routing_key: str, body: bytes, target: str) -> bool:
        """True when the broker took it, False when a full queue refused it."""
        self._start()
        task = asyncio.ensure_future(self._publish_bounded(exchange, routing_key, body, target))
        task.add_done_callback(_retrieve_exception)
        return await asyncio.shield(task)  # a cancelled caller leaves the publish to finish alone

    async def _publish_bounded(self, exchange: str, routing_key: str, body: bytes, target: str) -> bool:
        try:
            async with asyncio.timeout(self.publish_timeout):
                channel = await self.link.channel(self.publish_timeout)
                await channel.basic_publish(body, exchange=exchange, routing_key=routing_key)
        except aiormq.exceptions.DeliveryError:
            return False
        except LayerUnavailable as exc:
            raise LayerUnavailable(f"could not publish to {target}: {exc}") from None
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise LayerUnavailable(
                f"could not publish to {target} within {self.publish_timeout:g} s "
                f"({type(exc).__name__}); the broker is unreachable or too slow"
            ) from None
        self.published += 1
        return True

    # -- groups ------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        check_group(group)
        check_channel(channel)
        self._start()
        members = self.members.setdefault(group, set())
        first = not members
        members.add(channel)
        if first:
            # During an outage the binding is made on reconnect, with all the others.
            await self._bind("queue_bind", group)

    async def group_discard(self, group: str, channel: str) -> None:
        check_group(group)
        check_channel(channel)
        members = self.members.get(group)
        if members is None or channel not in members:
            return
        members.discard(channel)
        if not members:
            del self.members[group]
            await self._bind("queue_unbind", group)

    async def _bind(self, method: str, group: str) -> None:
        if not self.link.ready:
            return  # (re)connecting: the set-up binds exactly self.members when it comes

        async def bind() -> None:
            try:
                async with asyncio.timeout(self.publish_timeout):
                    channel = await self.link.channel(self.publish_timeout)
                    # The membership may have changed while we waited; do what it says now.
                    wanted = group in self.members
                    if (method == "queue_bind") != wanted:
                        return
                    await getattr(channel, method)(self.queue_name, self.groups_exchange, routing_key=group)
            except Exception as exc:  # disconnected: the next connection binds from self.members
                logger.debug("%s %s deferred to the next connection: %s", method, group, exc)

        task = asyncio.ensure_future(bind())
        task.add_done_callback(_retrieve_exception)
        await asyncio.shield(task)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # the caller was cancelled and will not look: don't warn about it
