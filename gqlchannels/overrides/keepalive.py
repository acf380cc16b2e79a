"""One timer for the keepalive pings of every WebSocket, instead of one per connection.

A timer per connection (uvloop's timer handle, its libuv timer, the bound method) costs about
540 bytes, held for the connection's whole life, and wakes the loop once per connection per
interval. Here each connection waits in the bucket of its deadline's tick, and one timer,
armed for the earliest tick, calls every connection due then: a few dozen bytes per
connection, and one wake-up serves all the connections due in the same tick. A deadline is
met at most one tick late; a tick is a tenth of the interval, at most RESOLUTION.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import Protocol

logger = logging.getLogger("gqlchannels")

RESOLUTION = 0.25  # seconds; the longest a ping or a keepalive timeout is late


class Waiter(Protocol):
    def keepalive_due(self, tick: int) -> None:
        """Called once the deadline of `tick` (from KeepaliveClock.schedule) has passed."""


class KeepaliveClock:
    __slots__ = ("resolution", "buckets", "timer", "armed_tick")

    # No reference to the loop, which keys the clock in _clocks: the timer, which has one, is
    # only set while a connection waits.
    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self.buckets: dict[int, set[Waiter]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.armed_tick: int | None = None

    def schedule(self, waiter: Waiter, delay: float) -> int:
        """Call `waiter.keepalive_due` after `delay` seconds; returns the tick to cancel it with."""
        tick = math.ceil((asyncio.get_running_loop().time() + delay) / self.resolution)
        bucket = self.buckets.get(tick)
        if bucket is None:
            bucket = self.buckets[tick] = set()
        bucket.add(waiter)
        if self.armed_tick is None or tick < self.armed_tick:
            self._arm(tick)
        return tick

    def cancel(self, waiter: Waiter, tick: int) -> None:
        bucket = self.buckets.get(tick)
        if bucket is not None:
            bucket.discard(waiter)
            if not bucket:
                del self.buckets[tick]  # the timer may still fire for it: it finds nothing due
                if not self.buckets and self.timer is not None:
                    self.timer.cancel()
                    self.timer = self.armed_tick = None

    def _arm(self, tick: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.armed_tick = tick
        self.timer = asyncio.get_running_loop().call_at(tick * self.resolution, self._fire)

    def _fire(self) -> None:
        # Everything up to the tick armed for is due, even if the loop's clock reads a hair
        # earlier; and everything up to now, if the loop was late.
        now = asyncio.get_running_loop().time()
        last_due = max(self.armed_tick or 0, math.floor(now / self.resolution))
        self.timer = self.armed_tick = None
        for tick in sorted(t for t in self.buckets if t <= last_due):
            for waiter in self.buckets.pop(tick):
                try:
                    waiter.keepalive_due(tick)
                except Exception:  # one connection's failure must not stop the others' keepalive
                    logger.exception("keepalive of a WebSocket connection failed")
        if self.buckets:
            # Even if a waiter armed the timer while being called: its deadline may come after
            # one that was already waiting.
            self._arm(min(self.buckets))


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, KeepaliveClock]] = \
    weakref.WeakKeyDictionary()


def resolution_for(interval: float, timeout: float | None) -> float:
    return min(RESOLUTION, interval / 10, (timeout or math.inf) / 10)


def clock_for(resolution: float) -> KeepaliveClock:
    """The running loop's clock of that resolution (one per server, in practice)."""
    loop = asyncio.get_running_loop()
    clocks = _clocks.setdefault(loop, {})
    clock = clocks.get(resolution)
    if clock is None:
        clock = clocks[resolution] = KeepaliveClock(resolution)
    return clock
