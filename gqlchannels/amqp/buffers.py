"""Per-channel message buffers of one process: bounded, dropping the oldest, counting losses.

A receiver that never reads (a stuck subscription, a slow client) fills only its own buffer;
everyone else keeps receiving at full speed. What it loses is counted, never silent.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from channels.exceptions import StopConsumer


class ChannelBuffers:
    def __init__(self, capacity: int, expiry: float | None) -> None:
        self.capacity = max(1, capacity)
        self.expiry = expiry  # seconds a message may wait in a buffer; None: no limit
        self._messages: dict[str, collections.deque[tuple[float, dict[str, Any]]]] = {}
        # Receivers waiting on an empty buffer, oldest first: almost always one per channel,
        # so a list (about 90 bytes) rather than a deque (about 760) for every idle receiver.
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.delivered = 0
        self.dropped = 0
        self.closed = False

    def put(self, channel: str, message: dict[str, Any]) -> None:
        waiters = self._waiters.get(channel)
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(message)
                self.delivered += 1
                return
        buffer = self._messages.setdefault(channel, collections.deque())
        if len(buffer) >= self.capacity:
            buffer.popleft()
            self.dropped += 1
        buffer.append((time.monotonic(), message))

    async def get(self, channel: str) -> dict[str, Any]:
        if self.closed:
            raise StopConsumer
        buffer = self._messages.get(channel)
        while buffer:
            queued_at, message = buffer.popleft()
            if not buffer:
                del self._messages[channel]
            if self.expiry is not None and time.monotonic() - queued_at > self.expiry:
                self.dropped += 1
                continue
            self.delivered += 1
            return message
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        try:
            return await waiter
        finally:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    del self._waiters[channel]

    def waited_on(self) -> set[str]:
        """Channels a receiver is waiting on now."""
        return set(self._waiters)

    def sweep(self) -> None:
        """Forget messages older than the expiry: channels nobody receives on any more."""
        if self.expiry is None:
            return
        cutoff = time.monotonic() - self.expiry
        for channel in list(self._messages):
            buffer = self._messages[channel]
            while buffer and buffer[0][0] < cutoff:
                buffer.popleft()
                self.dropped += 1
            if not buffer:
                del self._messages[channel]

    def close(self) -> None:
        self.closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(StopConsumer())
        self._waiters.clear()
        self._messages.clear()
