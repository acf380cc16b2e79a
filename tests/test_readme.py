"""The README's subscription example is code a newcomer copies: serve it and use it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gql_clients import JOIN_ROOMS, SEND_MESSAGE, Subscriber
from tests.support.readme import readme_example, readme_examples, readme_section
from tests.support.server import ServerProcess
from tests.support.user_suite import run_user_suite

GROUP_RULE = "use 1 to 99 ASCII letters, digits, '-', '_' or '.'"


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    app_dir = tmp_path_factory.mktemp("readme")
    (app_dir / "readme_chat.py").write_text(readme_example())
    with ServerProcess("readme_chat:schema", "--app-dir", str(app_dir)) as server:
        yield server


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


def test_readme_states_the_group_name_rule() -> None:
    assert "1 to 99 ASCII letters, digits" in readme_section("Writing subscriptions")


def test_invalid_group_name_reaches_http_client(readme_server: ServerProcess) -> None:
    # The README's example builds the group name from the room id without checking it.
    response = httpx.post(f"{readme_server.url}/graphql", timeout=10, json={
        "query": SEND_MESSAGE, "variables": {"room": "lobby 2", "msg": "hi"}})
    error = response.json()["errors"][0]
    assert "group name 'chat-room-lobby 2' is not valid" in error["message"], error
    assert GROUP_RULE in error["message"]
    assert "Traceback" not in readme_server.log()  # the client's mistake, not the server's


@pytest.mark.parametrize("operation", ["subscription", "mutation"])
async def test_invalid_group_name_reaches_websocket_client(readme_server: ServerProcess, operation: str) -> None:
    query, variables = (JOIN_ROOMS, {"rooms": [{"id": "lobby 2"}]}) if operation == "subscription" \
        else (SEND_MESSAGE, {"room": "lobby 2", "msg": "hi"})
    subscriber = await Subscriber.open(readme_server.ws_url)
    try:
        await subscriber.subscribe(query, variables)
        message = await subscriber.recv()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert "group name 'chat-room-lobby 2' is not valid" in errors[0]["message"], message
        assert GROUP_RULE in errors[0]["message"]
    finally:
        await subscriber.close()


@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_readme_testing_example_passes_as_a_users_suite(tmp_path: Path, mode: str) -> None:
    """The README's conftest.py and test module, verbatim, run by pytest as a user runs them."""
    conftest, tests = readme_examples("Testing your schema")
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_chat.py").write_text(tests)
    result = run_user_suite(tmp_path, mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests.count('async def test_')} passed" in result.stdout, result.stdout
