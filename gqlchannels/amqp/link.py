"""One process's connection to RabbitMQ, kept up for as long as the layer lives.

A single task owns the connection: it connects, lets the layer set up its queue, bindings
and consumer, waits for the connection to die, and reconnects with exponential backoff and
full jitter (a hundred replicas must not hit a restarted broker in the same second). It
logs one line per change of state, not a traceback per attempt, and stops within a bounded
time when the layer closes, whatever it was doing.

Callers never touch the connection's futures directly: they wait for `channel()` with a
timeout, so a caller that gives up or is cancelled cannot break the connection for the
others (the failure channels-rabbitmq has, DESIGN.md #1 and #2).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq

from ..errors import LayerUnavailable
from ..layers import mask_url

logger = logging.getLogger("gqlchannels.amqp")

FIRST_RETRY_DELAY = 0.5  # seconds; doubled per failed attempt up to reconnect_max_delay


@dataclasses.dataclass
class LinkState:
    connected: bool = False
    since: float = dataclasses.field(default_factory=time.time)
    reconnects: int = 0
    attempts: int = 0  # failed attempts since the last connection
    last_error: str | None = None


class BrokerLink:
    def __init__(self, url: str, *, connect_timeout: float, reconnect_max_delay: float,
                 on_connected: Callable[[Any], Awaitable[None]]) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.on_connected = on_connected
        self.state = LinkState()
        self._channel: Any = None
        self._connection: Any = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gqlchannels-amqp-link")

    async def channel(self, timeout: float) -> Any:
        """The open AMQP channel; LayerUnavailable if there is none within `timeout` s."""
        self.start()
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout)
            except TimeoutError:
                raise LayerUnavailable(
                    f"RabbitMQ at {mask_url(self.url)} is not reachable"
                    + (f" ({self.state.last_error})" if self.state.last_error else "")
                    + f"; gave up after {timeout:g} s"
                ) from None
        return self._channel

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure to connect or set up: retry, quietly
                self._failed(exc)
                await asyncio.sleep(self._next_delay())
                continue
            closed = self._connection.closing
            # asyncio.wait, not await: aiormq cancels this future when a heartbeat finds the
            # connection stuck, and that must not read as this task being cancelled.
            await asyncio.wait([closed])
            if closed.cancelled():
                self.state.last_error = "no heartbeat from the broker"
            elif closed.exception() is not None:
                exc = closed.exception()
                self.state.last_error = f"{type(exc).__name__}: {exc}"
            await self._close_connection()
            self._lost()

    async def _connect_once(self) -> None:
        connection = await asyncio.wait_for(aiormq.connect(self.url), self.connect_timeout)
        self._connection = connection
        try:
            channel = await asyncio.wait_for(connection.channel(publisher_confirms=True), self.connect_timeout)
            await self.on_connected(channel)
        except BaseException:
            await self._close_connection()
            raise
        self._channel = channel
        was_reconnect = self.state.reconnects > 0 or self.state.last_error is not None
        self.state = dataclasses.replace(self.state, connected=True, since=time.time(), attempts=0)
        self._ready.set()
        if was_reconnect:
            logger.warning("channel layer reconnected to RabbitMQ at %s", mask_url(self.url))
        else:
            logger.info("channel layer connected to RabbitMQ at %s", mask_url(self.url))

    def _failed(self, exc: BaseException) -> None:
        self.state.attempts += 1
        self.state.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log = logger.warning if self.state.attempts == 1 else logger.debug
        log("channel layer cannot reach RabbitMQ at %s (%s); retrying with backoff",
            mask_url(self.url), self.state.last_error)

    def _lost(self) -> None:
        self._ready.clear()
        self._channel = None
        if self._closing:
            return
        self.state = dataclasses.replace(self.state, connected=False, since=time.time(),
                                         reconnects=self.state.reconnects + 1)
        logger.warning("channel layer lost its RabbitMQ connection (%s); reconnecting",
                       self.state.last_error or "closed")

    def _next_delay(self) -> float:
        ceiling = min(self.reconnect_max_delay, FIRST_RETRY_DELAY * 2 ** (self.state.attempts - 1))
        return random.uniform(0, ceiling)  # full jitter

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 2)
            except BaseException:  # closing a broken connection: nothing more to do
                pass

    async def close(self, timeout: float = 3.0) -> None:
        self._closing = True
        self._ready.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=timeout)
        await self._close_connection()
        self.state = dataclasses.replace(self.state, connected=False, since=time.time())
