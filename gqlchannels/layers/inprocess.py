"""The in-process channel layer behind `memory://`: one process, no broker.

It keeps the Channels layer API and the options of Channels' own InMemoryChannelLayer
(`capacity`, `channel_capacity`, `expiry`, `group_expiry`; the `groups` and `flush`
extensions), which it replaces as gqlchannels' default, but not its costs, which grow with
the number of subscribers (docs/internals.md):

- a group send puts the message in each member's channel: one future set (the receiver was
  waiting) or one buffer append each, through the same local fan-out as the RabbitMQ layer
  (layers/buffers.py). No task per receiver, and no copy: every member gets the very dict
  that was sent. A message is immutable once sent; neither its sender nor any receiver may
  change it (Channels' layer deep-copied it for each receiver).
- a receive looks at its own channel only (a buffer, else a future to wait on), never at
  the others; expired messages and group memberships are swept at most every few seconds,
  from the sends, not on every call.

Capacity and expiry as in Channels' layer, but counted: a message for a channel whose
buffer holds `capacity` messages is refused for that channel (`send` raises ChannelFull; a
group send skips that member) and counted as dropped (reason `full`); one that waited
longer than `expiry` seconds for its receiver is dropped when reached (reason `expired`).
Unlike Channels' layer, a channel whose message expired stays in its groups: a receiver that
fell behind for a while is not cut off for good (gqlchannels' subscriptions leave their
groups themselves; `group_expiry` ends memberships nobody left). `state()` reports the
counters as the RabbitMQ layer does, for /metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable
from typing import Any

from asgiref.sync import markcoroutinefunction
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from ..events.messages import check_channel, check_group
from .buffers import ChannelBuffers, Overflow
from .state import LayerState

logger = logging.getLogger("gqlchannels.layer")

SWEEP_INTERVAL = 10.0  # seconds between sweeps of expired messages and memberships
DROP_LOG_INTERVAL = 10.0  # at most one "messages dropped" line per this many seconds


class InProcessChannelLayer(BaseChannelLayer):
    """A Channels layer for one process: `memory://`.

    `capacity`: messages a channel holds for its receiver (`channel_capacity`: per channel
    name pattern, as in Channels); `expiry`: seconds a message may wait for its receiver;
    `group_expiry`: seconds after which a group membership ends unless renewed by another
    `group_add` (0, the default: never; Channels' layer ends them after a day, which would cut
    off a subscription open longer: gqlchannels' subscriptions leave their groups themselves).
    Use one instance from one event loop.
    """

    extensions = ["groups", "flush"]

    def __init__(self, expiry: float = 60, group_expiry: float = 0, capacity: int = 100,
                 channel_capacity: dict[Any, int] | None = None, **kwargs: Any) -> None:
        super().__init__(expiry=expiry, capacity=capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.group_expiry = group_expiry
        self.buffers = ChannelBuffers(capacity, expiry, Overflow.REFUSE,
                                      capacity_of=self.get_capacity if self.channel_capacity else None)
        # group -> {channel: when it joined (monotonic)}, in joining order: a renewed
        # membership moves to the end, so the oldest are always first.
        self.groups: dict[str, dict[str, float]] = {}
        self._receiving: set[str] = set()  # channels received on since the last sweep, names checked
        self._numbers = itertools.count(1)
        self.published = 0
        self.dropped_memberships = 0  # memberships ended by group_expiry
        self._since = time.time()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL
        self._reported_drops = 0
        self._last_drop_log = 0.0

    # -- receiving ---------------------------------------------------------------------

    @markcoroutinefunction
    def receive(self, channel: str) -> Awaitable[dict[str, Any]]:
        # A subscription receives on the same channel for every message: its name is checked
        # on its first receive, and from then on the buffer's awaitable is returned as it is
        # (a tail call), so no frame of this method waits with each idle subscription.
        if channel in self._receiving:
            return self.buffers.get(channel)
        return self._receive_unchecked(channel)

    async def _receive_unchecked(self, channel: str) -> dict[str, Any]:
        check_channel(channel, specific=False)  # raised on awaiting, as from any coroutine
        self._receiving.add(channel)
        return await self.buffers.get(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix.rstrip('.') or 'specific'}.inprocess!{next(self._numbers)}"

    # -- sending -----------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        if not isinstance(message, dict):
            raise TypeError(f"a message must be a dict, not {type(message).__name__}")
        check_channel(channel, specific=False)
        self._maybe_sweep()
        if not self.buffers.put(channel, message):
            raise ChannelFull(channel)
        self.published += 1

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not isinstance(message, dict):
            raise TypeError(f"a message must be a dict, not {type(message).__name__}")
        check_group(group)
        self._maybe_sweep()
        self.published += 1
        members = self.groups.get(group)
        if members:
            # At most once for a full member, as the Channels spec asks of groups: the others
            # still get it. Counted by the buffers.
            self.buffers.fan_out(members, message)
            # One turn of the loop (not one per member) before the sender goes on: the woken
            # receivers run first, so subscribers hear a mutation's message before its answer
            # is sent, as with Channels' layer (whose group_send awaited a task per member).
            await asyncio.sleep(0)

    # -- groups ------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        check_group(group)
        check_channel(channel, specific=False)
        self._maybe_sweep()
        members = self.groups.get(group)
        if members is None:
            members = self.groups[group] = {}
        else:
            members.pop(channel, None)  # renewed: to the end, with the newest
        members[channel] = time.monotonic()

    async def group_discard(self, group: str, channel: str) -> None:
        check_group(group)
        check_channel(channel, specific=False)
        members = self.groups.get(group)
        if members is not None and members.pop(channel, None) is not None and not members:
            del self.groups[group]

    # -- flush, close, state -----------------------------------------------------------

    async def flush(self) -> None:
        """Forget every group and every buffered message (receivers waiting wait on)."""
        self.groups.clear()
        self.buffers.clear()

    async def close(self) -> None:
        """Nothing to release: no connection, no task (as Channels' in-memory layer)."""

    def state(self) -> LayerState:
        return LayerState(
            connected=True, since=self._since, reconnects=0, published=self.published,
            delivered=self.buffers.delivered, dropped=self.buffers.dropped, groups=len(self.groups),
            last_error=None, ready=True, dropped_full=self.buffers.dropped_full,
            dropped_expired=self.buffers.dropped_expired,
        )

    # -- expiry ------------------------------------------------------------------------

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            self.sweep(now)

    def sweep(self, now: float | None = None) -> None:
        """Drop expired messages (counted) and expired group memberships now. Called by the
        sends every SWEEP_INTERVAL seconds: a layer nobody sends to holds nothing new."""
        now = time.monotonic() if now is None else now
        self.buffers.sweep()
        self._receiving = self.buffers.waited_on()
        if self.group_expiry:
            cutoff = now - self.group_expiry
            for group in list(self.groups):
                members = self.groups[group]
                expired = list(itertools.takewhile(lambda joined: joined[1] < cutoff, members.items()))
                for channel, _ in expired:
                    del members[channel]
                self.dropped_memberships += len(expired)
                if not members:
                    del self.groups[group]
        self._log_drops(now)

    def _log_drops(self, now: float) -> None:
        dropped = self.buffers.dropped
        if dropped > self._reported_drops and now - self._last_drop_log >= DROP_LOG_INTERVAL:
            logger.warning(
                "channel layer dropped %d message(s) for receivers too slow to keep up "
                "(%d in all: %d to full channels, %d expired)", dropped - self._reported_drops, dropped,
                self.buffers.dropped_full, self.buffers.dropped_expired)
            self._reported_drops, self._last_drop_log = dropped, now
