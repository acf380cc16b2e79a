"""GraphiQL with no internet: headless Chromium loads the IDE from the server alone, runs a
query, and shows a subscription's message that a mutation sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.support.browser import Browser
from tests.support.gql_clients import SEND_MESSAGE
from tests.support.server import CHAT_APP, ServerProcess

RESULT_TEXT = "document.querySelector('.result-window') && document.querySelector('.result-window').innerText"
EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror')"
RESPONSE_EDITOR = "document.querySelector('.result-window .CodeMirror')"
RUN = "document.querySelector('.graphiql-execute-button').click(), true"


async def run_in_editor(page: Browser, fragment: str) -> None:
    """Wait until the editor holds the query from the URL and the response editor exists, then
    press the run button. GraphiQL loads CodeMirror lazily, one editor at a time, and its run
    action returns without a word while the response editor is missing: a click before then is
    lost (it was, once, on a slow first start of Chromium)."""
    await page.wait_for(f"{EDITOR} && {EDITOR}.CodeMirror.getValue().includes({fragment!r}) && !!{RESPONSE_EDITOR}")
    await page.evaluate(RUN)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(CHAT_APP) as running:
        yield running


def loopback_only(urls: list[str]) -> list[str]:
    return [url for url in urls if urlsplit(url).hostname not in ("127.0.0.1", "localhost")
            and not url.startswith(("data:", "about:", "blob:"))]


async def test_ide_loads_offline_and_runs_a_query(server: ServerProcess) -> None:
    async with Browser() as page:
        query = quote('{ hello(name: "browser") }')
        await page.goto(f"{server.url}/graphql?q={query}")
        await run_in_editor(page, "browser")
        text = await page.wait_for(f"({RESULT_TEXT} || '').includes('Hello, browser!') && {RESULT_TEXT}")
        assert "Hello, browser!" in text
        assert any(url.endswith("/graphql/ide/graphiql-3.8.3.min.js") for url in page.requests)
        assert loopback_only(page.requests) == []  # nothing left the machine


async def test_ide_subscription_shows_a_mutations_message(server: ServerProcess) -> None:
    room = f"ide-{uuid.uuid4().hex[:8]}"
    subscription = f'subscription {{ joinChatRooms(rooms: [{{id: "{room}"}}]) {{ id message }} }}'
    async with Browser() as page:
        await page.goto(f"{server.url}/graphql?q={quote(subscription)}")
        await run_in_editor(page, room)
        await page.wait_for(f"({RESULT_TEXT} || '').includes('just joined the room!')")
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{server.url}/graphql",
                                         json={"query": SEND_MESSAGE, "variables": {"room": room, "msg": "seen in the IDE"}})
        assert response.json() == {"data": {"sendChatMessage": True}}
        await page.wait_for(f"({RESULT_TEXT} || '').includes('seen in the IDE')")
        assert any(url.startswith("ws://127.0.0.1") for url in page.requests)
        assert loopback_only(page.requests) == []
