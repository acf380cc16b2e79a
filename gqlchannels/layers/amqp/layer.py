"""The RabbitMQ channel layer behind `amqp://` and `amqps://` URLs.

Same wire format and broker objects as channels-rabbitmq 4.0.1 (a direct exchange "groups",
one exclusive queue `channels_<12 letters>` per process, msgpack bodies), so processes on
either layer exchange messages; built on aiormq instead of carehare, because the ways
channels-rabbitmq dies (docs/internals.md) are in carehare's futures and its reader loop:

- callers never share a connection future: broker operations run in their own task, each
  bounded by a timeout, and a cancelled caller leaves them to finish (#1, #2);
- a message that does not decode is dropped and counted, the reader goes on (#3);
- re-binding after a reconnect uses one AMQP channel, so thousands of groups do not need
  thousands of channels, and a failure is retried with the connection, not fatal (#4);
- TLS options need amqps:// (refused at parse time), the heartbeat is explicit (#5, #7);
- every receiver has its own bounded buffer that drops its oldest messages, so one that
  never reads stalls nobody (#6).

What a publish promises: it returns when the broker confirmed the message (publisher
confirms), which for a group means it was put in the queue of every process bound to the
group at that moment. It raises LayerUnavailable at once when the link knows the broker
cannot take it (down, refusing, blocking publishers) and after `publish_timeout` when it
cannot tell; the message says whether the broker may have taken it anyway (the connection
was lost while waiting for the confirmation). A message sent to one channel goes with the
mandatory flag, so one whose process is gone is counted as dropped instead of vanishing; a
group with no subscriber anywhere is, as Channels specifies, nobody's loss.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import string
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

import aiormq
from asgiref.sync import markcoroutinefunction
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from ... import telemetry
from ...errors import LayerUnavailable
from ...events.messages import check_channel, check_group
from ..buffers import ChannelBuffers
from ..state import LayerState
from .link import BrokerLink, cancelled_here
from .wire import Undecodable, decode, encode

logger = logging.getLogger("gqlchannels.amqp")

SWEEP_INTERVAL = 10.0  # seconds between sweeps of buffers nobody reads
BINDING_CHECK_BODY_TYPE = "gqlchannels.binding_check"
DROP_LOG_INTERVAL = 10.0  # at most one "messages dropped" line per this many seconds


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
        binding_check_interval: float = 5.0,
        **tls: str,
    ) -> None:
        super().__init__(expiry=int(expiry), capacity=local_capacity)
        self.remote_capacity = remote_capacity
        self.message_ttl = expiry
        self.groups_exchange = groups_exchange
        self.publish_timeout = publish_timeout
        self.queue_name = f"channels_{_random_letters(12)}"
        if binding_check_interval < 0:
            raise ValueError("binding_check_interval must be 0 (off) or a number of seconds")
        self.binding_check_interval = binding_check_interval
        # A routing key on the groups exchange that only this process binds and publishes to:
        # while a publish to it is routed, the exchange routes to this process's queue.
        self.binding_check_key = f"gqlchannels.binding-check.{self.queue_name}"
        self._binding_check_body = encode({"type": BINDING_CHECK_BODY_TYPE}, group=self.binding_check_key)
        self.buffers = ChannelBuffers(local_capacity, local_expiry)
        self.members: dict[str, set[str]] = {}  # group -> channels of this process
        self._receiving: set[str] = set()  # channels received on since the last sweep, already checked
        self.published = 0
        self.dropped_at_broker = 0
        self.undecodable = 0
        self._reported_drops = 0
        self._last_drop_log = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: list[asyncio.Task[None]] = []  # the sweep and the binding check
        self._operations: set[asyncio.Task[Any]] = set()  # publishes and bindings under way
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
            if not self._background:
                self._background.append(loop.create_task(self._sweep_forever(), name="gqlchannels-amqp-sweep"))
                if self.binding_check_interval:
                    self._background.append(loop.create_task(self._check_binding_forever(),
                                                             name="gqlchannels-amqp-binding-check"))

    async def connect(self, timeout: float) -> None:
        """Wait for the first connection attempt: LayerUnavailable saying why when it fails
        (refused, wrong password, ...) or after `timeout` seconds without an answer."""
        self._start()
        await self.link.channel(timeout)

    async def close(self) -> None:
        """Stop: within a few seconds, whether the broker is up or not. Publishes and
        bindings under way end with it (LayerUnavailable), leaving no task behind."""
        self._closed = True
        self.buffers.close()
        for task in self._background:
            task.cancel()
        await self.link.close()
        if self._operations:
            await asyncio.wait(list(self._operations), timeout=self.publish_timeout)
        if self._background:
            await asyncio.wait(self._background)

    def state(self) -> LayerState:
        link = self.link.state
        return LayerState(
            connected=link.connected, since=link.since, reconnects=link.reconnects,
            published=self.published, delivered=self.buffers.delivered,
            dropped=self.buffers.dropped + self.dropped_at_broker + self.undecodable,
            dropped_full=self.buffers.dropped_full, dropped_expired=self.buffers.dropped_expired,
            dropped_at_broker=self.dropped_at_broker, undecodable=self.undecodable,
            groups=len(self.members), last_error=link.last_error,
            ready=link.ready, reason=None if link.ready else self.link.unavailable_reason(),
        )

    def add_state_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` on every change of the connection's state (from the layer's loop)."""
        self.link.listeners.append(lambda state: listener())

    async def _set_up(self, channel: Any) -> str:
        """On every (re)connection: exchange, queue, consumer, then every group's binding.
        Returns what was set up, for the link's log line."""
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
        if self.binding_check_interval:
            await channel.queue_bind(self.queue_name, self.groups_exchange, routing_key=self.binding_check_key)
        return f"queue {self.queue_name}, {len(bound)} group(s) bound"

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.buffers.sweep()
            self._receiving = self.buffers.waited_on()
            self._log_drops()

    async def _check_binding_forever(self) -> None:
        while True:
            await asyncio.sleep(self.binding_check_interval)
            if self.link.state.ready:
                await self._check_binding()

    async def _check_binding(self) -> None:
        """Whether the groups exchange still routes to this process's queue; if not, rebuild.

        Deleting the exchange takes every queue's bindings with it, and nothing tells the
        queues: once anything declares the exchange again (another replica reconnecting),
        publishes succeed and reach nobody here, silently. So the layer publishes, with the
        mandatory flag, to a routing key only its own queue binds: the broker returns it
        when that binding is gone, and closes the channel (404, noticed by the link) when the
        exchange itself is. Either way the link reconnects, declaring the exchange and
        binding every group again, and says what happened."""
        try:
            async with asyncio.timeout(self.publish_timeout):
                channel = await self.link.channel(self.publish_timeout)
                await channel.basic_publish(self._binding_check_body, exchange=self.groups_exchange,
                                            routing_key=self.binding_check_key, mandatory=True)
        except aiormq.exceptions.PublishError:
            self.link.fault(
                f"exchange {self.groups_exchange!r} no longer routes to the layer's queue (the exchange was "
                f"deleted and declared again, or the queue's bindings removed); messages published to its "
                f"groups in the last {self.binding_check_interval:g} s may not have reached this process")
        except (Exception, asyncio.CancelledError) as exc:  # unreachable, timed out, closed: the link says so
            if isinstance(exc, asyncio.CancelledError) and cancelled_here():
                raise
            logger.debug("binding check did not complete: %s", exc or type(exc).__name__)

    # -- receiving ---------------------------------------------------------------------

    async def _on_message(self, delivered: Any) -> None:
        try:
            channel, group, message = decode(delivered.body)
        except Undecodable as exc:
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                logger.warning("dropped a message that cannot be decoded (%s); %d so far", exc, self.undecodable)
            return
        if telemetry.TRACING.on:
            # The publish's trace context came as AMQP headers (the body is the wire format's).
            headers = delivered.header.properties.headers
            if headers:
                self._deliver(channel, group, message, headers)
                return
        if channel is not None:
            self.buffers.put(channel, message)
        else:
            # The same dict for every member, no copy: messages are immutable once sent.
            self.buffers.fan_out(self.members.get(group, ()), message)
        self._log_drops()

    def _deliver(self, channel: str | None, group: str | None, message: dict[str, Any], headers: Any) -> None:
        received = telemetry.TRACING.otel.received
        if channel is not None:
            self.buffers.put(channel, received(message, headers, group))
        else:
            for member in list(self.members.get(group, ())):
                self.buffers.put(member, received(dict(message), headers, group))
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
        taken = await self._publish("", channel.split("!", 1)[0], body, f"channel {channel!r}", mandatory=True)
        if taken is False:
            raise ChannelFull(f"channel {channel!r} is full")

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        check_group(group)
        body = encode(message, group=group)
        headers = telemetry.trace_headers_of(message)  # beside the body, which peers read as it is
        if await self._publish(self.groups_exchange, group, body, f"group {group!r}", headers=headers) is False:
            # At most once, as the Channels spec asks of a full group, but never silently.
            self.dropped_at_broker += 1
            self._log_drops()

    async def _publish(self, exchange: str, routing_key: str, body: bytes, target: str,
                       mandatory: bool = False, headers: dict[str, str] | None = None) -> bool:
        """True when the broker took it, False when a full queue refused it."""
        self._start()
        # A cancelled caller leaves the publish to finish alone: cancelling aiormq mid-publish
        # would close the AMQP channel under every other caller. Bounded by publish_timeout.
        return await asyncio.shield(self._operation(
            self._publish_bounded(exchange, routing_key, body, target, mandatory, headers)))

    async def _publish_bounded(self, exchange: str, routing_key: str, body: bytes, target: str,
                               mandatory: bool, headers: dict[str, str] | None = None) -> bool:
        sent = False  # from here on, the broker may have the message even if we hear nothing
        try:
            async with asyncio.timeout(self.publish_timeout):
                channel = await self.link.channel(self.publish_timeout)
                sent = True
                if headers:
                    await channel.basic_publish(body, exchange=exchange, routing_key=routing_key, mandatory=mandatory,
                                                properties=aiormq.spec.Basic.Properties(headers=headers))
                else:
                    await channel.basic_publish(body, exchange=exchange, routing_key=routing_key, mandatory=mandatory)
        except aiormq.exceptions.PublishError:
            # Returned: no queue of that name, the receiving process is gone. Counted, not silent.
            self.dropped_at_broker += 1
            self._log_drops()
            return True
        except aiormq.exceptions.DeliveryError:
            return False
        except LayerUnavailable as exc:
            raise LayerUnavailable(f"could not publish to {target}: {exc}") from None
        except aiormq.exceptions.ChannelClosed as exc:
            # Usually the broker refusing this very publish (no write permission, no exchange);
            # the link notices the closed channel and rebuilds it.
            reply_text = next((arg for arg in reversed(exc.args) if isinstance(arg, str)), type(exc).__name__)
            raise LayerUnavailable(f"could not publish to {target}: RabbitMQ at {self.link.where} closed "
                                   f"the channel it was sent on ({reply_text})") from None
        except asyncio.CancelledError as exc:
            if cancelled_here():
                raise  # close() is ending this publish
            raise LayerUnavailable(f"could not publish to {target}: {self._lost_while(sent, exc)}") from None
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise LayerUnavailable(f"could not publish to {target}: {self._lost_while(sent, exc)}") from None
        self.published += 1
        return True

    def _lost_while(self, sent: bool, exc: BaseException) -> str:
        """Why a publish failed, and whether the broker may have it all the same."""
        if not sent:
            return f"no connection to RabbitMQ at {self.link.where} within {self.publish_timeout:g} s"
        if isinstance(exc, TimeoutError):
            return (f"RabbitMQ at {self.link.where} did not confirm it within {self.publish_timeout:g} s; "
                    "it may or may not be delivered")
        return (f"the connection to RabbitMQ at {self.link.where} was lost before the broker "
                "confirmed it; it may or may not be delivered")

    def _operation(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A publish or binding in its own task, tracked so that close() ends it."""
        task = asyncio.ensure_future(coroutine)
        self._operations.add(task)
        task.add_done_callback(self._operation_done)
        return task

    def _operation_done(self, task: asyncio.Task[Any]) -> None:
        self._operations.discard(task)
        if not task.cancelled():
            task.exception()  # the caller was cancelled and will not look: don't warn about it

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
        if not self.link.state.connected:
            return  # (re)connecting: the set-up binds exactly self.members when it comes

        async def bind() -> None:
            try:
                async with asyncio.timeout(self.publish_timeout):
                    channel = await self.link.channel(self.publish_timeout, publishing=False)
                    # The membership may have changed while we waited; do what it says now.
                    wanted = group in self.members
                    if (method == "queue_bind") != wanted:
                        return
                    await getattr(channel, method)(self.queue_name, self.groups_exchange, routing_key=group)
            except asyncio.CancelledError:
                if cancelled_here():
                    raise
                logger.debug("%s %s deferred to the next connection: the connection closed", method, group)
            except Exception as exc:
                # Connected, yet the binding failed or hung: rebuild the whole set-up rather
                # than leave a group that receives nothing. Disconnected: the next connection
                # binds from self.members anyway.
                logger.debug("%s %s deferred to the next connection: %s", method, group, exc)
                if self.link.state.connected:
                    self.link.fault(f"{method} of group {group!r} failed ({exc or type(exc).__name__})")

        await asyncio.shield(self._operation(bind()))
