"""The README's subscription example is code a newcomer copies: serve it and use it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx

from tests.support.gql_clients import SEND_MESSAGE, JOIN_ROOMS, Subscriber
from tests.support.server import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Writing subscriptions", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


async def test_readme_subscription_example_serves(tmp_path: Path) -> None:
    (tmp_path / "readme_chat.py").write_text(readme_example())
    room = f"readme-{uuid.uuid4().hex[:8]}"
    with ServerProcess("readme_chat:schema", "--app-dir", str(tmp_path)) as server:
        subscriber = await Subscriber.open(server.ws_url)
        try:
            await subscriber.subscribe(JOIN_ROOMS, {"rooms": [{"id": room}]})
            # No join announcement in this version: retry the send until the listener has joined.
            async with httpx.AsyncClient(timeout=10) as client:
                for attempt in range(50):
                    response = await client.post(f"{server.url}/graphql", json={
                        "query": SEND_MESSAGE, "variables": {"room": room, "msg": f"try {attempt}"}})
                    assert response.json() == {"data": {"sendChatMessage": True}}
                    try:
                        data = await subscriber.next_data(timeout=0.2)
                        break
                    except TimeoutError:
                        continue
            assert data["joinChatRooms"]["id"] == room
            assert data["joinChatRooms"]["message"].startswith("try ")
        finally:
            await subscriber.close()
