"""Subscriptions that are easy to write right: `info.context["events"]`.

    @strawberry.subscription
    async def room(self, info: Info, id: str) -> AsyncGenerator[Message, None]:
        async for event in info.context["events"].listen([f"room-{id}"], type="chat.message"):
            yield Message(text=event["text"])

Each listener gets its own channel on the layer, so two subscriptions on one WebSocket see
only their own groups' messages (Strawberry's `listen_to_channel` shares the connection's
channel, so they would see each other's). Groups are joined before the first message is
awaited and left when the subscription ends for any reason (the client unsubscribes or
disconnects, or the resolver returns or raises), without waiting on a slow broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from .. import telemetry
from .messages import check_group
from .publish import publish_through

logger = logging.getLogger("gqlchannels")

LEAVE_TIMEOUT = 5.0  # seconds leaving may take before it is abandoned to the layer's cleanup


class GroupListener:
    """Messages sent to some groups (optionally of given types), through one own channel.

    Use `async for` (joins on the first iteration, leaves when the loop ends), or
    `async with` to join first and do something once joined, then `async for` inside.
    """

    __slots__ = ("layer", "groups", "types", "channel")  # one per subscription: no instance dict

    def __init__(self, layer: BaseChannelLayer, groups: Iterable[str], types: Iterable[str] = ()) -> None:
        self.layer = layer
        self.groups = list(dict.fromkeys(groups))  # unique, in order
        for group in self.groups:
            check_group(group)
        self.types = tuple(dict.fromkeys(types))  # a tuple: a frozenset of one is 216 bytes
        self.channel: str | None = None

    @property
    def joined(self) -> bool:
        return self.channel is not None

    async def join(self) -> None:
        channel = await self.layer.new_channel()
        self.channel = channel
        try:
            for group in self.groups:
                await self.layer.group_add(group, channel)
        except BaseException:
            await self.leave()
            raise

    async def leave(self) -> None:
        channel, self.channel = self.channel, None
        if channel is None:
            return
        # Shielded: leaving runs while the subscription task is being cancelled, and must
        # finish (or time out) even so; otherwise the group binding leaks.
        discard = asyncio.ensure_future(self._discard_all(channel))
        try:
            await asyncio.shield(discard)
        except asyncio.CancelledError:
            pass  # the shielded discard goes on by itself

    async def _discard_all(self, channel: str) -> None:
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                for group in self.groups:
                    await self.layer.group_discard(group, channel)
        except Exception as exc:
            logger.warning("could not leave groups %s: %s", ", ".join(self.groups), exc)

    async def __aenter__(self) -> GroupListener:
        await self.join()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.leave()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if telemetry.TRACING.on:  # a span per message; off, the plain generator, nothing per message
            return telemetry.TRACING.otel.traced_messages(self, self._messages())  # type: ignore[no-any-return]
        return self._messages()

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        owns_membership = not self.joined
        if owns_membership:
            await self.join()
        try:
            while self.channel is not None:
                message = await self.layer.receive(self.channel)
                if not self.types or message.get("type") in self.types:
                    yield message
        finally:
            if owns_membership:
                await self.leave()


class Events:
    """What resolvers find at `info.context["events"]`: listen to groups, publish to them."""

    __slots__ = ("_layer",)

    def __init__(self, layer: BaseChannelLayer | None = None) -> None:
        self._layer = layer

    @property
    def layer(self) -> BaseChannelLayer:
        return self._layer or get_channel_layer()

    def listen(self, groups: Iterable[str] | str, *, type: str | Iterable[str] = ()) -> GroupListener:  # noqa: A002
        groups = [groups] if isinstance(groups, str) else groups
        types = [type] if isinstance(type, str) else type
        return GroupListener(self.layer, groups, types)

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Send to every subscriber of `group`; checked first, bounded in time."""
        await publish_through(self.layer, group, message)
