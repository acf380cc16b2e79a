"""Per-channel message buffers of one process, and the local fan-out both layers use.

Every channel has its own bounded buffer and its own waiting receivers, so:

- a message for a channel whose receiver waits goes straight into that receiver's future:
  no task, no copy, no buffer;
- a receiver takes from its own channel only, never looking at anyone else's;
- a receiver that never reads (a stuck subscription, a slow client) fills only its own
  buffer; everyone else keeps receiving at full speed. What it loses is counted, never silent.

A group message goes to each member as the very same dict (`fan_out`): a message is
immutable once sent. Neither layer copies it, and nothing in gqlchannels changes one it
received; a sender must not change a dict after sending it either.

What a full buffer does is the layer's choice: the RabbitMQ layer drops the buffer's oldest
message to make room (`Overflow.DROP_OLDEST`: the freshest events win), the in-process layer
refuses the new one (`Overflow.REFUSE`, as Channels' own in-memory layer does: `send` raises
ChannelFull). Both count what they drop, by reason: `dropped_full`, `dropped_expired`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time
from collections.abc import Callable, Iterable
from typing import Any

from channels.exceptions import StopConsumer


class Overflow(enum.Enum):
    DROP_OLDEST = "drop oldest"
    REFUSE = "refuse"


class ChannelBuffers:
    def __init__(self, capacity: int, expiry: float | None, overflow: Overflow = Overflow.DROP_OLDEST,
                 capacity_of: Callable[[str], int] | None = None) -> None:
        self.capacity = max(1, capacity)
        self.expiry = expiry or None  # seconds a message may wait in a buffer; None (or 0): no limit
        self.overflow = overflow
        self._capacity_of = capacity_of  # a per-channel capacity (Channels' channel_capacity), or None
        self._messages: dict[str, collections.deque[tuple[float, dict[str, Any]]]] = {}
        # Receivers waiting on an empty buffer, oldest first: almost always one per channel,
        # so a list (about 90 bytes) rather than a deque (about 760) for every idle receiver.
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.delivered = 0
        self.dropped_full = 0
        self.dropped_expired = 0
        self.closed = False

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_expired

    def put(self, channel: str, message: dict[str, Any]) -> bool:
        """Hand `message` to the channel's receiver, or buffer it. False when the buffer was
        full and the message refused (Overflow.REFUSE); counted either way."""
        if self._hand_to_waiter(channel, message):
            return True
        buffer = self._messages.get(channel)
        if buffer is None:
            buffer = self._messages[channel] = collections.deque()
        elif len(buffer) >= (self.capacity if self._capacity_of is None else max(1, self._capacity_of(channel))):
            self.dropped_full += 1
            if self.overflow is Overflow.REFUSE:
                return False
            buffer.popleft()
        buffer.append((time.monotonic(), message))
        return True

    def fan_out(self, channels: Iterable[str], message: dict[str, Any]) -> None:
        """`message`, the same object, to every one of `channels` (a group's members): one
        future set or one buffer append each. A member whose buffer is full loses it, counted.
        `put` never awaits nor runs a receiver, so `channels` may be a live set or dict."""
        put = self.put
        for channel in channels:
            put(channel, message)

    async def get(self, channel: str) -> dict[str, Any]:
        if self.closed:
            raise StopConsumer
        buffer = self._messages.get(channel)
        while buffer:
            queued_at, message = buffer.popleft()
            if not buffer:
                del self._messages[channel]
            if self.expiry is not None and time.monotonic() - queued_at > self.expiry:
                self.dropped_expired += 1
                continue
            self.delivered += 1
            return message
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters.get(channel)
        if waiters is None:
            self._waiters[channel] = [waiter]
        else:
            waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a message in the moment the receiver was cancelled (its task had not
                # resumed yet): the message is not lost with it, it goes to whoever receives next.
                self.delivered -= 1
                self._put_back(channel, waiter.result())
            raise
        finally:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    del self._waiters[channel]

    def _hand_to_waiter(self, channel: str, message: dict[str, Any]) -> bool:
        """Give `message` to the channel's first receiver still waiting; False if none is."""
        waiters = self._waiters.get(channel)
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(message)
                self.delivered += 1
                return True
        return False

    def _put_back(self, channel: str, message: dict[str, Any]) -> None:
        if self._hand_to_waiter(channel, message):
            return
        if not self.closed:
            # First in line again; over capacity by one at most, for a moment.
            self._messages.setdefault(channel, collections.deque()).appendleft((time.monotonic(), message))

    def waiting(self, channel: str) -> bool:
        """A receiver is waiting on `channel` now."""
        return channel in self._waiters

    def waited_on(self) -> set[str]:
        """Channels a receiver is waiting on now."""
        return set(self._waiters)

    def buffered(self, channel: str) -> int:
        """Messages waiting in `channel`'s buffer."""
        buffer = self._messages.get(channel)
        return len(buffer) if buffer is not None else 0

    def sweep(self) -> None:
        """Forget messages older than the expiry: channels nobody receives on any more."""
        if self.expiry is None:
            return
        cutoff = time.monotonic() - self.expiry
        for channel in list(self._messages):
            buffer = self._messages[channel]
            while buffer and buffer[0][0] < cutoff:
                buffer.popleft()
                self.dropped_expired += 1
            if not buffer:
                del self._messages[channel]

    def clear(self) -> None:
        """Drop every buffered message, uncounted (Channels' flush); waiting receivers wait on."""
        self._messages.clear()

    def close(self) -> None:
        self.closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(StopConsumer())
        self._waiters.clear()
        self._messages.clear()
