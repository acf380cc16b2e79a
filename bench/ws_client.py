"""The load side for subscriptions, run as its own process: fan-out latency and idle holding.

    python -m bench.ws_client fanout WS_URL HTTP_URL --subscribers 500 --messages 20
    python -m bench.ws_client hold WS_URL HTTP_URL --connections 2000 --per-connection 1

Prints one JSON object. `hold` prints {"ready": ...} once every subscription has received a
message, then keeps the sockets open until its stdin closes.
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

SUBSCRIBE = "subscription($room: String!) { joinChatRooms(rooms: [{id: $room}]) { message } }"
SEND = "mutation($room: String!, $msg: String!) { sendChatMessage(room: {id: $room}, message: $msg) }"
LIMIT = 120.0  # seconds any phase may take


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
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for n in range(per_connection):
            await ws.send(json.dumps({"id": str(n), "type": "subscribe",
                                      "payload": {"query": SUBSCRIBE, "variables": {"room": room}}}))
        return ws

    for start in range(0, connections, 100):  # in batches: a burst of 2,000 handshakes is its own benchmark
        sockets += await asyncio.gather(*(one() for _ in range(min(100, connections - start))))
    return sockets


async def send(client: httpx.AsyncClient, http_url: str, room: str, text: str) -> None:
    response = await client.post(http_url, json={"query": SEND, "variables": {"room": room, "msg": text}})
    assert response.json() == {"data": {"sendChatMessage": True}}, response.text


async def warm_up(sockets: list[ClientConnection], per_connection: int, client: httpx.AsyncClient,
                  http_url: str, room: str) -> None:
    """Send until every subscription has seen a message: then all are joined."""
    pending = {(i, str(n)) for i in range(len(sockets)) for n in range(per_connection)}

    async def drain(i: int, ws: ClientConnection) -> None:
        while any(key[0] == i for key in pending):
            message = json.loads(await ws.recv())
            if message.get("type") == "next":
                pending.discard((i, message["id"]))

    readers = [asyncio.create_task(drain(i, ws)) for i, ws in enumerate(sockets)]
    deadline = time.monotonic() + LIMIT
    while pending and time.monotonic() < deadline:
        await send(client, http_url, room, "warm-up")
        await asyncio.sleep(0.3)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    if pending:
        raise SystemExit(f"{len(pending)} subscriptions never received a message")
    await asyncio.sleep(1)
    for ws in sockets:  # discard the remaining warm-up messages
        while True:
            try:
                await asyncio.wait_for(ws.recv(), 0.01)
            except TimeoutError:
                break


async def fanout(args: argparse.Namespace) -> dict[str, object]:
    room = f"bench-{uuid.uuid4().hex[:8]}"
    sockets = await open_subscriptions(args.ws_url, room, args.subscribers, 1)
    async with httpx.AsyncClient(timeout=30) as client:
        await warm_up(sockets, 1, client, args.http_url, room)
        latencies: list[float] = []
        last_receipt = 0.0

        async def collect(ws: ClientConnection) -> None:
            nonlocal last_receipt
            for _ in range(args.messages):
                message = json.loads(await ws.recv())
                now = time.perf_counter()
                sent = float(message["payload"]["data"]["joinChatRooms"]["message"].split(":", 1)[1])
                latencies.append(now - sent)
                last_receipt = max(last_receipt, now)

        collectors = [asyncio.create_task(collect(ws)) for ws in sockets]
        first_send = time.perf_counter()
        for n in range(args.messages):
            await send(client, args.http_url, room, f"m{n}:{time.perf_counter()!r}")
        await asyncio.wait_for(asyncio.gather(*collectors), LIMIT)
    for ws in sockets:
        await ws.close()
    latencies.sort()
    delivered = len(latencies)
    return {
        "delivered": delivered, "expected": args.subscribers * args.messages,
        "deliveries_per_s": delivered / (last_receipt - first_send),
        "p50_ms": latencies[delivered // 2] * 1000, "p99_ms": latencies[int(delivered * 0.99) - 1] * 1000,
    }


async def hold(args: argparse.Namespace) -> None:
    room = f"hold-{uuid.uuid4().hex[:8]}"
    sockets = await open_subscriptions(args.ws_url, room, args.connections, args.per_connection, args.deflate)
    async with httpx.AsyncClient(timeout=30) as client:
        await warm_up(sockets, args.per_connection, client, args.http_url, room)
    print(json.dumps({"ready": args.connections * args.per_connection}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the runner is done
    for ws in sockets:
        ws.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fanout", "hold"])
    parser.add_argument("ws_url")
    parser.add_argument("http_url")
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--per-connection", type=int, default=1)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate, like a browser")
    args = parser.parse_args()
    raise_file_limit()
    if args.mode == "fanout":
        print(json.dumps(asyncio.run(fanout(args))))
    else:
        asyncio.run(hold(args))


if __name__ == "__main__":
    main()
