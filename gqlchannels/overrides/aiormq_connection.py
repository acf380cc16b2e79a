"""aiormq's connection, telling the RabbitMQ layer what aiormq keeps to itself (a fix).

- Publishing blocked by the broker (a memory or disk alarm): aiormq handles
  connection.blocked by logging a warning and holding an event its public API never
  exposes; its handlers are looked up by their (name-mangled) names when the connection's
  reader starts, so `watched_connection` overrides them.
- The consumer cancelled by the broker (its queue deleted, its node gone from a cluster):
  aiormq answers basic.cancel by dropping the consumer from the channel's consumer table and
  nothing else; `watch_channel` puts a table there that tells.
- No "Future exception was never retrieved" tracebacks: when the connection dies, aiormq
  fails every future it holds with the same exception, and a publish that ended another way
  (its drain failed first, its caller's timeout cancelled it while queued) never awaits its
  confirmation or drain future; the connection's write queue and the channel's confirmation
  table here mark every such future as looked at when it ends (whoever awaits it still gets
  its outcome).

With another aiormq, the connection and channel are aiormq's own: a blocked broker or a
cancelled consumer is noticed only when a publish or a bind fails.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import aiormq

from . import Kind, override

GATE = override(
    "aiormq-watched-connection", Kind.FIX, {"aiormq": ">=6.8,<7.3"},
    stock="aiormq's own connection (a blocked broker or a deleted queue noticed only when a publish fails)",
)


def watched_connection(url: str, *, on_blocked: Callable[[str], None],
                       on_unblocked: Callable[[], None]) -> aiormq.Connection:
    """A connection to `url` (not yet connected) that reports being blocked and unblocked."""
    if not GATE.active:
        return aiormq.Connection(url)
    return _WatchedConnection(url, on_blocked=on_blocked, on_unblocked=on_unblocked)


def blocked_by(connection: aiormq.Connection) -> str | None:
    """Why the broker blocks the connection's publishing, None if it does not (or is not known)."""
    return getattr(connection, "blocked_by", None)


def watch_channel(channel: Any, *, on_consumer_cancelled: Callable[[str], None]) -> None:
    """Make `channel` report a consumer the broker cancels, and leave no failed future unseen."""
    if GATE.active:
        channel.consumers = _ConsumerTable(channel.consumers, on_consumer_cancelled)
        channel.confirmations = _Confirmations(channel.confirmations)


class _WatchedConnection(aiormq.Connection):
    """aiormq's connection, telling us when the broker blocks and unblocks it, and leaving
    no failed future unseen when it dies."""

    def __init__(self, url: str, *, on_blocked: Callable[[str], None], on_unblocked: Callable[[], None]) -> None:
        super().__init__(url)
        # Channels take this queue when they are made: every frame they send passes here.
        self.write_queue = _FrameQueue(maxsize=self.write_queue.maxsize)
        self.blocked_by: str | None = None
        self._on_blocked = on_blocked
        self._on_unblocked = on_unblocked

    async def _Connection__handle_connection_blocked(self, frame: Any) -> None:
        self.blocked_by = _blocked_reason(frame.reason)
        await super()._Connection__handle_connection_blocked(frame)  # type: ignore[misc]
        self._on_blocked(self.blocked_by)

    async def _Connection__handle_connection_unblocked(self, frame: Any) -> None:
        self.blocked_by = None
        await super()._Connection__handle_connection_unblocked(frame)  # type: ignore[misc]
        self._on_unblocked()


def _blocked_reason(reason: str | None) -> str:
    words = {"low on memory": "memory alarm", "low on disk": "disk alarm"}
    return words.get((reason or "").strip(), reason or "no reason given") if reason else "no reason given"


class _ConsumerTable(dict):  # type: ignore[type-arg]
    """The channel's consumer table, telling us when the broker cancels one of ours."""

    def __init__(self, consumers: dict[str, Any], on_cancelled: Callable[[str], None]) -> None:
        super().__init__(consumers)
        self._on_cancelled = on_cancelled

    def pop(self, tag: str, *default: Any) -> Any:
        removed = super().pop(tag, *default)
        if removed is not None:
            self._on_cancelled(tag)
        return removed


class _FrameQueue(asyncio.Queue):  # type: ignore[type-arg]
    async def put(self, frame: Any) -> None:
        _look_at_drain(frame)  # here already: a put cancelled while the queue is full never reaches put_nowait
        await super().put(frame)

    def put_nowait(self, frame: Any) -> None:
        _look_at_drain(frame)
        super().put_nowait(frame)


class _Confirmations(collections.OrderedDict):  # type: ignore[type-arg]
    def __setitem__(self, delivery_tag: int, confirmation: Any) -> None:
        if isinstance(confirmation, asyncio.Future):
            confirmation.add_done_callback(_look_at_outcome)
        super().__setitem__(delivery_tag, confirmation)


def _look_at_drain(frame: Any) -> None:
    drain = getattr(frame, "drain_future", None)
    if drain is not None:
        drain.add_done_callback(_look_at_outcome)


def _look_at_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
