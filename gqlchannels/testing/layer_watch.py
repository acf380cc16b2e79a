"""How a test client knows that a subscription is running.

graphql-transport-ws has no "subscribed" message: after `subscribe`, the server says nothing
until the first result. A test that subscribes and then publishes at once would race the
resolver, which may not have joined its groups yet, and the message would be lost (a real
client has the same race; the shipped chat example answers it with a join notice). The
test client can do better, because it runs the server: the application's layer is wrapped
in an `ObservedLayer`, which passes every call through unchanged and tells the WebSocket
connection that made it (found through a context variable the client sets for that
connection's task, which the operations' tasks inherit) when it joins and leaves groups and
when it waits for messages.

A subscription is running once its connection waits for messages on a channel that has
joined a group, with no join still under way: `events.listen(...)` (with `async for` or
`async with`) joins all its groups before it first waits, and Strawberry's
`listen_to_channel` waits on the connection's channel while it joins. A subscription that
sends a result before it listens has started too (the client sees that result).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from channels.layers import BaseChannelLayer


class LayerWatch:
    """What the operations of one test WebSocket connection are doing on the layer."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.joining = 0
        self.groups_of: dict[str, set[str]] = {}  # channel -> the groups it has joined
        self.waiting: dict[str, int] = {}  # channel -> receive() calls waiting on it

    @property
    def listening(self) -> bool:
        """A channel in a group is waiting for messages, and no join is under way."""
        return self.joining == 0 and any(self.groups_of.get(channel) for channel in self.waiting)


WATCH: contextvars.ContextVar[LayerWatch | None] = contextvars.ContextVar("gqlchannels_testing_watch", default=None)


class ObservedLayer:
    """A channel layer, passed through unchanged, reporting to the calling connection's watch.

    Calls made outside a watched connection (HTTP requests, the client's own publish, the
    lifespan) are passed through with nothing recorded.
    """

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)

    async def group_add(self, group: str, channel: str) -> None:
        watch = WATCH.get()
        if watch is None:
            return await self.layer.group_add(group, channel)
        watch.joining += 1
        try:
            await self.layer.group_add(group, channel)
            watch.groups_of.setdefault(channel, set()).add(group)
        finally:
            watch.joining -= 1
            watch.on_change()

    async def group_discard(self, group: str, channel: str) -> None:
        watch = WATCH.get()
        if watch is not None:
            watch.groups_of.get(channel, set()).discard(group)
        await self.layer.group_discard(group, channel)

    async def receive(self, channel: str) -> dict[str, Any]:
        watch = WATCH.get()
        if watch is None:
            return await self.layer.receive(channel)
        watch.waiting[channel] = watch.waiting.get(channel, 0) + 1
        watch.on_change()
        try:
            return await self.layer.receive(channel)
        finally:
            remaining = watch.waiting.pop(channel) - 1
            if remaining:
                watch.waiting[channel] = remaining
