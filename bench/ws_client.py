"""The load side for idle subscriptions, run as its own process (the fan-out's is bench/node/fanout.js).

    python -m bench.ws_client hold WS_URL HTTP_URL --connections 2000 --per-connection 1 [--deflate]

Prints {"ready": ..., "warm_up_failures": [...]} once every subscription has received a message,
then keeps the sockets open until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from bench.operations import SEND, SUBSCRIBE

LIMIT = 120.0  # seconds any phase may take
SEND_TIMEOUT = 30.0  # seconds one publish (an HTTP mutation) may take
QUIET = 1.0  # seconds without a delivery after which the warm-up publishes again


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_subscriptions(url: str, room: str, connections: int, per_connection: int,
                             deflate: bool = False) -> list[ClientConnection]:
    """`deflate`: offer permessage-deflate, as browsers always do."""
    sockets: list[ClientConnection] = []

    async def one() -> ClientConnection:
        ws = await connect(url, subprotocols=["graphql-transport-ws"], open_timeout=60, max_queue=None,
                           ping_interval=None, compression="deflate" if deflate else None)
        await ws.send(json.dumps({"type": "connection_init"}))
        answer = json.loads(await ws.recv())
        if answer.get("type") != "connection_ack":
            raise SystemExit(f"connection_init was answered {answer}")
        for n in range(per_connection):
            await ws.send(json.dumps({"id": str(n), "type": "subscribe",
                                      "payload": {"query": SUBSCRIBE, "variables": {"room": room}}}))
        return ws

    for start in range(0, connections, 100):  # in batches: a burst of 2,000 handshakes is its own benchmark
        sockets += await asyncio.gather(*(one() for _ in range(start, min(start + 100, connections))))
    return sockets


class PublishFailed(Exception):
    """A publish (the sendChatMessage mutation) timed out or was answered with an error."""


async def send(client: httpx.AsyncClient, http_url: str, room: str, text: str) -> None:
    try:
        response = await client.post(http_url, json={"query": SEND, "variables": {"room": room, "msg": text}})
    except httpx.TimeoutException:
        raise PublishFailed(f"a publish took over {SEND_TIMEOUT:.0f} s") from None
    if response.status_code != 200 or response.json() != {"data": {"sendChatMessage": True}}:
        raise PublishFailed(f"a publish was answered {response.status_code} {response.text[:300]}")


async def warm_up(sockets: list[ClientConnection], per_connection: int, client: httpx.AsyncClient,
                  http_url: str, room: str) -> list[str]:
    """Publish until every subscription has seen a message: then all are joined. A publish is
    repeated only when deliveries have stopped (subscriptions that joined after it), never
    while the server is still delivering: at 10,000 subscriptions, a publish every fraction of
    a second would bury a server under its own warm-up. Returns why publishes failed meanwhile
    (while thousands of subscriptions join, a publish may time out and the next succeed)."""
    unseen = [{str(n) for n in range(per_connection)} for _ in sockets]
    pending = len(sockets) * per_connection
    failures: list[str] = []

    async def drain(ws: ClientConnection, ids: set[str]) -> None:
        nonlocal pending
        while ids:
            message = json.loads(await ws.recv())
            if message.get("type") == "next" and message["id"] in ids:
                ids.discard(message["id"])
                pending -= 1

    async def publish() -> None:
        try:
            await send(client, http_url, room, "warm-up")
        except PublishFailed as failure:
            failures.append(str(failure))

    readers = [asyncio.create_task(drain(ws, ids)) for ws, ids in zip(sockets, unseen, strict=True)]
    deadline = time.monotonic() + LIMIT
    await publish()
    seen_pending, progress_at = pending, time.monotonic()
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if pending < seen_pending:
            seen_pending, progress_at = pending, time.monotonic()
        elif time.monotonic() - progress_at > QUIET:
            await publish()
            progress_at = time.monotonic()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    if pending:
        raise SystemExit(f"{pending} subscriptions received no message within {LIMIT:.0f} s"
                         + (f" ({len(failures)} publishes failed: {failures[-1]})" if failures else ""))
    await asyncio.sleep(1)

    async def discard(ws: ClientConnection) -> None:  # the remaining warm-up messages
        while True:
            try:
                await asyncio.wait_for(ws.recv(), 0.05)
            except TimeoutError:
                return

    await asyncio.gather(*(discard(ws) for ws in sockets))  # together: one at a time, 2,000 waits add up
    return failures


async def hold(args: argparse.Namespace) -> None:
    room = f"hold-{uuid.uuid4().hex[:8]}"
    sockets = await open_subscriptions(args.ws_url, room, args.connections, args.per_connection, args.deflate)
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT) as client:
        warm_up_failures = await warm_up(sockets, args.per_connection, client, args.http_url, room)
    print(json.dumps({"ready": args.connections * args.per_connection, "warm_up_failures": warm_up_failures}),
          flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the runner is done
    for ws in sockets:
        ws.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["hold"])
    parser.add_argument("ws_url")
    parser.add_argument("http_url")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--per-connection", type=int, default=1)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate, like a browser")
    args = parser.parse_args()
    raise_file_limit()
    try:
        asyncio.run(hold(args))
    except (OSError, TimeoutError, WebSocketException, httpx.HTTPError, PublishFailed) as exc:
        # One line the bench reports as the contender's result: it did not cope with the load.
        raise SystemExit(str(exc) if isinstance(exc, PublishFailed) else f"{type(exc).__name__}: {exc}") from None


if __name__ == "__main__":
    main()
