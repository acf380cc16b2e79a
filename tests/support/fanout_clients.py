"""Clients for tests/support/fanout_schema.py: subscribers that know which worker holds
them, on both workers of a server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect

from tests.support.server import ServerProcess

FANOUT_APP = "tests.support.fanout_schema:schema"
SUBSCRIBE = "subscription($room: String!) { room(room: $room) }"
SEND = "mutation($room: String!, $text: String!) { send(room: $room, text: $text) }"


@dataclasses.dataclass
class Subscriber:
    ws: ClientConnection
    worker: int
    received: set[str] = dataclasses.field(default_factory=set)
    answers: dict[str, Any] = dataclasses.field(default_factory=dict)  # other operations' results, by id
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "next" and message.get("id") == "1":
                    self.received.add(message["payload"]["data"]["room"])
                elif message.get("type") == "next":
                    self.answers[message["id"]] = message["payload"]


async def subscribe(url: str, room: str) -> Subscriber:
    ws = await connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10)
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": SUBSCRIBE, "variables": {"room": room}}}))
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    joined = first["payload"]["data"]["room"]
    assert joined.startswith("joined worker "), first
    subscriber = Subscriber(ws, int(joined.rsplit(" ", 1)[1]))
    subscriber.reader = asyncio.create_task(subscriber.read())
    return subscriber


T = TypeVar("T")
HOLD_SECONDS = 3.0  # far longer than opening a few connections on a loaded machine


async def while_held(subscriber: Subscriber, action: Callable[[], Awaitable[T]]) -> T:
    """Run `action` while the subscriber's worker is blocked, so that the connections it opens
    can only go to another worker; return once that worker serves again."""
    marker = Path(tempfile.gettempdir()) / f"gqlchannels-held-{uuid.uuid4().hex}"
    op_id = f"hold-{marker.name}"
    await subscriber.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {
        "query": f'{{ hold(seconds: {HOLD_SECONDS}, marker: "{marker}") }}'}}))
    try:
        async with asyncio.timeout(20):
            while not marker.exists():  # the worker is blocked from now on
                await asyncio.sleep(0.01)
            result = await action()
            while op_id not in subscriber.answers:  # and serves again
                await asyncio.sleep(0.05)
    finally:
        marker.unlink(missing_ok=True)
    return result


async def subscribers_on_both_workers(server: ServerProcess, room: str, each: int = 3) -> list[Subscriber]:
    """`each` subscribers on each of the server's two workers: while the first one's worker is
    held, the others connect to the other worker, and the other way round."""
    first = await subscribe(server.ws_url, room)

    async def connect_some(count: int) -> list[Subscriber]:
        return [await subscribe(server.ws_url, room) for _ in range(count)]

    others = await while_held(first, lambda: connect_some(each))
    more = await while_held(others[0], lambda: connect_some(each - 1))
    subscribers = [first, *more, *others]
    by_worker = {worker: sum(s.worker == worker for s in subscribers) for worker in {s.worker for s in subscribers}}
    assert len(by_worker) == 2 and min(by_worker.values()) == each, by_worker
    return subscribers
