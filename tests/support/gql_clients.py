"""Minimal, strict GraphQL clients for the tests: HTTP (httpx) and both WebSocket protocols
(websockets), so every test talks to the server exactly as a real client would."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SEND_MESSAGE = "mutation($room: String!, $msg: String!) { sendChatMessage(room: {id: $room}, message: $msg) }"
JOIN_ROOMS = "subscription($rooms: [ChatRoom!]!) { joinChatRooms(rooms: $rooms) { id message } }"


def graphql_post(base_url: str, query: str, variables: dict[str, Any] | None = None,
                 path: str = "/graphql") -> dict[str, Any]:
    response = httpx.post(f"{base_url}{path}", json={"query": query, "variables": variables or {}}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


async def agraphql_post(client: httpx.AsyncClient, base_url: str, query: str,
                        variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post(f"{base_url}/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


class Subscriber:
    """One WebSocket connection with one subscription, speaking either protocol."""

    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.op_id = str(next(self._ids))

    @classmethod
    async def open(cls, url: str, protocol: str = "graphql-transport-ws", **kwargs: Any) -> Subscriber:
        ws = await connect(url, subprotocols=[protocol], open_timeout=10, **kwargs)
        assert ws.subprotocol == protocol
        self = cls(ws, protocol)
        await self.send({"type": "connection_init", "payload": {}})
        ack = await self.recv()
        assert ack["type"] == "connection_ack", ack
        return self

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] not in ("ka", "ping", "pong"):  # keep-alives are not results
                return message

    async def subscribe(self, query: str, variables: dict[str, Any]) -> None:
        start = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.send({"id": self.op_id, "type": start, "payload": {"query": query, "variables": variables}})

    async def next_data(self, timeout: float = 10) -> dict[str, Any]:
        message = await self.recv(timeout)
        expected = "next" if self.protocol == "graphql-transport-ws" else "data"
        assert message["type"] == expected, message
        assert message["id"] == self.op_id
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]

    async def expect_syntax_error(self) -> None:
        """The server's answer to a subscription whose document does not parse: graphql-ws's
        close with 4400, or the legacy protocol's error message."""
        if self.protocol == "graphql-transport-ws":
            with pytest.raises(ConnectionClosed) as closed:
                await self.recv()
            assert closed.value.rcvd.code == 4400 and "Syntax Error" in closed.value.rcvd.reason
        else:
            message = await self.recv()
            assert message["type"] == "error" and "Syntax Error" in message["payload"]["message"], message

    async def join_room(self, room: str) -> str:
        """Subscribe to one room and wait for our own join announcement; return its text.

        The announcement is sent after the groups are joined, so once it arrives any later
        message to the room must reach us: no sleep needed.
        """
        await self.subscribe(JOIN_ROOMS, {"rooms": [{"id": room}]})
        data = await self.next_data()
        assert data["joinChatRooms"]["message"].endswith(" just joined the room!"), data
        return data["joinChatRooms"]["message"]

    async def messages_until(self, wanted: str, timeout: float = 10) -> list[str]:
        """Collect room messages until `wanted` arrives (join notices of others included)."""
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                text = (await self.next_data())["joinChatRooms"]["message"]
                seen.append(text)
                if text == wanted:
                    return seen

    async def close(self) -> None:
        await self.ws.close()
