"""One process's connection to RabbitMQ, kept up for as long as the layer lives.

A single task owns the connection: it connects, lets the layer set up its queue, bindings
and consumer, watches for every way the broker can take that set-up away, and reconnects,
at once after a loss and then with exponential backoff and full jitter (a hundred replicas
must not hit a restarted broker in the same second). It logs one line per change of state,
in words (refused, wrong password, queue deleted), not a traceback per attempt, and stops
within a bounded time when the layer closes, whatever it was doing.

What the broker can do, and how each is noticed at once rather than at the next publish:

- close the connection (node stopped, restarted, killed, a forced close): the connection's
  `closing` future;
- close the AMQP channel (an error on it): the channel's `closing` future;
- cancel the consumer (its queue deleted, its node gone from a cluster): a basic.cancel,
  which aiormq takes in silence, so the channel's consumer table tells us;
- block publishing (memory or disk alarm): connection.blocked/unblocked, which aiormq only
  logs, so the connection tells us.
The last two reach into aiormq (gqlchannels.overrides.aiormq_connection); with another
aiormq, they are noticed only when a publish or a bind fails.

Callers never touch the connection's futures: they wait for `channel()`, which fails at
once when the link knows the broker cannot be used (the last attempt failed, publishing is
blocked) and waits, bounded, only while that is not known yet (the first attempt, or a
reconnection just begun). Waiting leaves nothing behind: no task, no callback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import aiormq
import pamqp.exceptions

from ...config.layer_url import mask_url
from ...errors import LayerUnavailable
from ...overrides import aiormq_connection

logger = logging.getLogger("gqlchannels.amqp")

FIRST_RETRY_DELAY = 0.5  # seconds; doubled per failed attempt up to reconnect_max_delay
CLOSE_CONNECTION_TIMEOUT = 2.0


class Phase(enum.Enum):
    CONNECTING = "connecting"  # an attempt is under way and nothing failed yet: callers wait
    CONNECTED = "connected"
    BLOCKED = "blocked"  # connected, but the broker refuses publishes for now
    DOWN = "down"  # the last attempt failed: callers fail at once
    CLOSED = "closed"


@dataclasses.dataclass
class LinkState:
    phase: Phase = Phase.CONNECTING
    since: float = dataclasses.field(default_factory=time.time)  # wall time of the last change
    reconnects: int = 0
    attempts: int = 0  # failed attempts since the last connection
    last_error: str | None = None  # why the link is not usable now (or was not, last)

    @property
    def connected(self) -> bool:
        """The queue, its consumer and its bindings exist: messages are received."""
        return self.phase in (Phase.CONNECTED, Phase.BLOCKED)

    @property
    def ready(self) -> bool:
        """Messages can be published as well as received."""
        return self.phase is Phase.CONNECTED


class BrokerLink:
    def __init__(self, url: str, *, connect_timeout: float, reconnect_max_delay: float,
                 on_connected: Callable[[Any], Awaitable[str | None]]) -> None:
        self.url = url
        self.where = _host_port(url)
        self.connect_timeout = connect_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.on_connected = on_connected
        self.state = LinkState()
        self.listeners: list[Callable[[LinkState], None]] = []  # told of every change, synchronously
        self._channel: Any = None
        self._connection: Any = None
        self._changed: asyncio.Future[None] | None = None  # resolved and replaced on each change
        self._fault: asyncio.Future[str] | None = None  # set by fault(): the set-up is broken
        self._task: asyncio.Task[None] | None = None
        self._failure_kind: str | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gqlchannels-amqp-link")

    async def channel(self, timeout: float, *, publishing: bool = True) -> Any:
        """The open AMQP channel. LayerUnavailable at once when the link knows the broker is
        unusable (for publishing, unless `publishing` is False: a blocked connection still
        binds); after `timeout` seconds when it is still finding out."""
        self.start()
        deadline = time.monotonic() + timeout
        while True:
            phase = self.state.phase
            if phase is Phase.CONNECTED or (phase is Phase.BLOCKED and not publishing):
                return self._channel
            if phase is not Phase.CONNECTING:
                raise LayerUnavailable(self.unavailable_reason())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LayerUnavailable(f"no connection to RabbitMQ at {self.where} within {timeout:g} s")
            # asyncio.wait neither cancels the shared future nor leaves a callback on it.
            await asyncio.wait([self._change_future()], timeout=remaining)

    def unavailable_reason(self) -> str:
        """Why the link cannot publish now, in words, naming the broker (no password)."""
        phase, error = self.state.phase, self.state.last_error
        if phase is Phase.BLOCKED:
            return f"RabbitMQ at {self.where} is blocking publishers ({error})"
        if phase is Phase.CLOSED:
            return "the channel layer is closed"
        if phase is Phase.CONNECTING:
            return f"connecting to RabbitMQ at {self.where}" + (f" (last: {error})" if error else "")
        return error or f"not connected to RabbitMQ at {self.where}"

    def fault(self, reason: str) -> None:
        """The layer's set-up on this connection is broken (e.g. a binding failed): reconnect,
        which builds all of it again."""
        if self._fault is not None and not self._fault.done():
            self._fault.set_result(reason)

    # -- the owning task ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._connect_once()
            except (Exception, asyncio.CancelledError) as exc:  # any failure to connect or set up: retry, quietly
                if isinstance(exc, asyncio.CancelledError):
                    if cancelled_here():
                        raise
                    exc = ConnectionError("the connection closed while it was being set up")
                self._attempt_failed(exc)
                await self._close_connection()
                await asyncio.sleep(self._next_delay())
                continue
            # Known before the old connection is closed: publishes fail or wait from now on.
            self._lost(await self._until_lost())
            await self._close_connection()

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self._fault = loop.create_future()
        connection = aiormq_connection.watched_connection(self.url, on_blocked=self._blocked,
                                                          on_unblocked=self._unblocked)
        self._connection = connection
        await asyncio.wait_for(connection.connect(), self.connect_timeout)
        channel = await asyncio.wait_for(connection.channel(publisher_confirms=True), self.connect_timeout)
        aiormq_connection.watch_channel(channel, on_consumer_cancelled=self._consumer_cancelled)
        set_up = await self.on_connected(channel)
        self._channel = channel
        was_reconnect = self.state.reconnects > 0 or self.state.last_error is not None
        blocked_by = aiormq_connection.blocked_by(connection)
        self._set(phase=Phase.BLOCKED if blocked_by else Phase.CONNECTED, attempts=0, last_error=blocked_by)
        detail = f" ({set_up})" if set_up else ""
        if was_reconnect:
            logger.warning("channel layer reconnected to RabbitMQ at %s%s", mask_url(self.url), detail)
        else:
            logger.info("channel layer connected to RabbitMQ at %s%s", mask_url(self.url), detail)

    async def _until_lost(self) -> str:
        """Wait until the broker takes the connection, the channel or the consumer away; say how."""
        connection, channel, fault = self._connection, self._channel, self._fault
        assert fault is not None
        # asyncio.wait, not await: aiormq cancels `closing` when a heartbeat finds the
        # connection stuck, and that must not read as this task being cancelled.
        await asyncio.wait([connection.closing, channel.closing, fault], return_when=asyncio.FIRST_COMPLETED)
        if fault.done():
            return fault.result()
        if connection.closing.done() or not connection.is_opened:
            return self._describe_loss(connection.closing, "connection")
        return self._describe_loss(channel.closing, "channel")

    def _describe_loss(self, closing: asyncio.Future[Any], what: str) -> str:
        if not closing.done() or closing.cancelled():
            return "no heartbeat from the broker"
        exc = closing.exception()
        if exc is None:
            return f"the broker closed the AMQP {what}"
        reply_text = next((arg for arg in reversed(exc.args) if isinstance(arg, str)), None)
        if isinstance(exc, (aiormq.exceptions.ConnectionClosed, aiormq.exceptions.ChannelClosed)) and reply_text:
            return f"the broker closed the AMQP {what}: {reply_text}"
        return f"the connection to {self.where} was lost ({reply_text or _exception_words(exc)})"

    def _consumer_cancelled(self, tag: str) -> None:
        self.fault("the broker cancelled the layer's consumer (its queue was deleted)")

    def _blocked(self, reason: str) -> None:
        if self.state.phase is Phase.CONNECTED:
            self._set(phase=Phase.BLOCKED, last_error=reason)
            logger.warning("RabbitMQ at %s blocks publishing (%s); publishes fail until it unblocks",
                           self.where, reason)

    def _unblocked(self) -> None:
        if self.state.phase is Phase.BLOCKED:
            self._set(phase=Phase.CONNECTED, last_error=None)
            logger.warning("RabbitMQ at %s accepts publishes again", self.where)

    def _attempt_failed(self, exc: BaseException) -> None:
        kind, reason = describe_connect_error(exc, self.url, self.connect_timeout)
        # One line when the outage starts and one when its cause changes (refused, then wrong
        # password); the attempts in between only at debug level.
        news = self.state.attempts == 0 or kind != self._failure_kind
        self._failure_kind = kind
        self._set(phase=Phase.DOWN, attempts=self.state.attempts + 1, last_error=reason)
        log = logger.warning if news else logger.debug
        log("channel layer cannot reach RabbitMQ: %s; retrying with backoff", reason)

    def _lost(self, reason: str) -> None:
        self._channel = None
        if self._closing:
            return
        # Retried at once: a deleted queue or a closed channel is rebuilt in milliseconds, and
        # a broker that is down refuses at once (then the backoff applies).
        self._set(phase=Phase.CONNECTING, reconnects=self.state.reconnects + 1, last_error=reason)
        logger.warning("channel layer lost its RabbitMQ connection (%s); reconnecting", reason)

    def _set(self, **changes: Any) -> None:
        self.state = dataclasses.replace(self.state, since=time.time(), **changes)
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)
        for listener in list(self.listeners):
            listener(self.state)

    def _change_future(self) -> asyncio.Future[None]:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _next_delay(self) -> float:
        ceiling = min(self.reconnect_max_delay, FIRST_RETRY_DELAY * 2 ** (self.state.attempts - 1))
        return random.uniform(0, ceiling)  # full jitter

    async def _close_connection(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            await asyncio.wait_for(connection.close(), CLOSE_CONNECTION_TIMEOUT)
        except asyncio.CancelledError:
            raise  # close() is stopping this task; it closes the connection itself afterwards
        except Exception:  # closing a broken connection: nothing more to do
            pass
        self._connection = None

    async def close(self, timeout: float = 3.0) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=timeout)
        await self._close_connection()
        self._channel = None
        self._set(phase=Phase.CLOSED)


def cancelled_here() -> bool:
    """Whether a CancelledError means this task is being cancelled. aiormq also rejects what a
    closing connection still awaits (a publish's confirmation, a binding's or a set-up call's
    answer) with CancelledError, as when the link reconnects after a fault: that is a lost
    connection, to be handled as one."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


def _exception_words(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_connect_error(exc: BaseException, url: str, connect_timeout: float) -> tuple[str, str]:
    """Why a connection attempt failed, in the words an operator needs (what, where, who),
    with the kind of failure: the same kind again is the same outage, not news."""
    where = _host_port(url)
    parts = urlsplit(url)
    user = unquote(parts.username or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return "credentials", (f"RabbitMQ at {where} refused the credentials of user {user!r} "
                               "(wrong user name or password)")
    if isinstance(exc, aiormq.exceptions.AuthenticationError):
        return "mechanism", f"RabbitMQ at {where} offers no authentication mechanism aiormq supports"
    if isinstance(exc, pamqp.exceptions.AMQPInternalError) and len(exc.args) == 2:
        frame = exc.args[1]  # the broker closed the connection instead of opening it
        reply_code, reply_text = getattr(frame, "reply_code", None), getattr(frame, "reply_text", "")
        if reply_code == 530:
            return "vhost", f"RabbitMQ at {where} refused access to vhost {vhost!r} for user {user!r} ({reply_text})"
        return "refused by broker", f"RabbitMQ at {where} refused the connection ({reply_text or reply_code})"
    if isinstance(exc, TimeoutError):
        return "timeout", f"no answer from RabbitMQ at {where} within {connect_timeout:g} s"
    errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else getattr(exc, "errno", None)
    if isinstance(exc, ConnectionRefusedError) or errno == 111:
        return "refused", f"connection refused at {where} (is RabbitMQ running and listening there?)"
    if errno is not None and errno < 0:  # getaddrinfo's codes
        detail = exc.args[1] if len(exc.args) > 1 else str(exc)
        return "resolve", f"cannot resolve the host of {where} ({detail})"
    if isinstance(exc, aiormq.exceptions.AMQPConnectionError) and len(exc.args) == 2:
        return "connect", f"cannot connect to {where} ({exc.args[1]})"
    if isinstance(exc, aiormq.exceptions.AMQPConnectionError) and len(exc.args) == 1:
        return "connect", f"cannot connect to {where} ({exc.args[0]})"
    return "other", f"cannot connect to RabbitMQ at {where} ({_exception_words(exc)})"
