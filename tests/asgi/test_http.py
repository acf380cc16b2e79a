"""GraphQL over HTTP, health endpoints and 404s, against the real server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.gql_clients import SEND_MESSAGE, graphql_post
from tests.support.server import ServerProcess


def test_query_over_post(memory_server: ServerProcess) -> None:
    assert graphql_post(memory_server.url, "{ hello }") == {"data": {"hello": "Hello, world!"}}


def test_query_over_get_with_variables(memory_server: ServerProcess) -> None:
    response = httpx.get(
        f"{memory_server.url}/graphql",
        params={"query": "query($n: String!) { hello(name: $n) }", "variables": '{"n": "Ada"}'},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"hello": "Hello, Ada!"}}


def test_mutation_over_http_reaches_the_layer(memory_server: ServerProcess) -> None:
    result = graphql_post(memory_server.url, SEND_MESSAGE, {"room": "lobby", "msg": "hi"})
    assert result == {"data": {"sendChatMessage": True}}


def test_trailing_slash_serves_graphql_too(memory_server: ServerProcess) -> None:
    assert graphql_post(memory_server.url, "{ hello }", path="/graphql/")["data"]["hello"] == "Hello, world!"


def test_invalid_room_id_is_a_graphql_error_not_a_500(memory_server: ServerProcess) -> None:
    result = graphql_post(memory_server.url, SEND_MESSAGE, {"room": "no spaces allowed", "msg": "x"})
    assert result["data"] is None
    assert "room id 'no spaces allowed' is not valid" in result["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/", "/favicon.ico", "/graphqlx", "/graphql/extra", "/wp-login.php"])
def test_unknown_paths_are_404(memory_server: ServerProcess, path: str) -> None:
    response = httpx.get(f"{memory_server.url}{path}")
    assert response.status_code == 404
    assert response.json()["hint"] == "GraphQL is served at /graphql"


def test_malformed_json_is_400_and_server_keeps_serving(memory_server: ServerProcess) -> None:
    response = httpx.post(f"{memory_server.url}/graphql", content=b'{"query": ',
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert graphql_post(memory_server.url, "{ hello }")["data"]["hello"] == "Hello, world!"


def test_health_and_readiness(memory_server: ServerProcess) -> None:
    assert httpx.get(f"{memory_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{memory_server.url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_browser_get_gets_the_ide(memory_server: ServerProcess) -> None:
    response = httpx.get(f"{memory_server.url}/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "graphiql" in response.text.lower()


def test_ide_can_be_switched_off() -> None:
    with ServerProcess("gqlchannels.examples.chat:schema", "--no-graphql-ide") as server:
        # A browser's GET gets the JSON 404 every other unknown path gets, saying why.
        for accept in ("text/html,application/xhtml+xml,*/*;q=0.8", "*/*"):
            response = httpx.get(f"{server.url}/graphql", headers={"accept": accept})
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert set(body) == {"error", "path", "hint"} and body["path"] == "/graphql", body
            assert "GraphiQL is turned off" in body["hint"] and "POST" in body["hint"], body
        assert httpx.get(f"{server.url}/graphql/ide/react-18.2.0.production.min.js").status_code == 404
        query = httpx.get(f"{server.url}/graphql", params={"query": "{ hello }"}, headers={"accept": "*/*"})
        assert query.json() == {"data": {"hello": "Hello, world!"}}


async def test_refused_origin_is_logged_with_our_option_name(memory_server: ServerProcess) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        await connect(memory_server.ws_url, subprotocols=["graphql-transport-ws"],
                      additional_headers={"Origin": "https://elsewhere.example"})
    refusals = [line for line in memory_server.log().splitlines() if "https://elsewhere.example" in line
                and "WebSocket" in line and "403" not in line]
    assert len(refusals) == 1, memory_server.log()
    assert "add it to --allowed-origins (GQLCHANNELS_ALLOWED_ORIGINS" in refusals[0]


def test_custom_path() -> None:
    with ServerProcess("gqlchannels.examples.chat:schema", "--path", "/api/gql") as server:
        assert graphql_post(server.url, "{ hello }", path="/api/gql")["data"]["hello"] == "Hello, world!"
        assert httpx.get(f"{server.url}/graphql").status_code == 404


async def test_websocket_to_unknown_path_is_404(memory_server: ServerProcess) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as rejected:
        await connect(f"ws://127.0.0.1:{memory_server.port}/elsewhere", subprotocols=["graphql-transport-ws"])
    assert rejected.value.response.status_code == 404
    assert graphql_post(memory_server.url, "{ hello }")["data"]["hello"] == "Hello, world!"


async def test_garbage_websocket_frame_closes_with_protocol_code(memory_server: ServerProcess) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(memory_server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send("{not json")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4400  # graphql-transport-ws: invalid message
    assert graphql_post(memory_server.url, "{ hello }")["data"]["hello"] == "Hello, world!"


def test_body_that_is_not_utf8_is_400(memory_server: ServerProcess) -> None:
    # Stock Strawberry answers this with a 500 (UnicodeDecodeError escapes its JSON parsing).
    response = httpx.post(f"{memory_server.url}/graphql", content=b'{"query": "\x80"}',
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not UTF-8" in response.text


@pytest.mark.parametrize(("protocol", "frame"), [
    ("graphql-transport-ws", '[1, 2]'),
    ("graphql-transport-ws", '{"type": "subscribe", "id": "1", "payload": "{ hello }"}'),
    ("graphql-transport-ws", '{"type": "subscribe", "id": ["x"], "payload": {"query": "{ hello }"}}'),
    ("graphql-ws", '[1, 2]'),
    ("graphql-ws", '{"type": "start", "id": "1", "payload": "{ hello }"}'),
    ("graphql-ws", '{"type": "start", "id": ["x"], "payload": {"query": "{ hello }"}}'),
])
async def test_malformed_protocol_message_closes_4400(memory_server: ServerProcess, protocol: str, frame: str) -> None:
    # Stock Strawberry raises inside the connection's task on each of these.
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(memory_server.ws_url, subprotocols=[protocol]) as ws:
        await ws.send('{"type": "connection_init"}')
        await asyncio.wait_for(ws.recv(), 10)  # connection_ack
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4400
    assert "Exception in ASGI application" not in memory_server.log()


def test_ide_page_and_assets_come_from_the_server(memory_server: ServerProcess) -> None:
    page = httpx.get(f"{memory_server.url}/graphql", headers={"accept": "text/html"}).text
    assert "unpkg.com" not in page and "https://" not in page.split("<script>")[0]
    asset = httpx.get(f"{memory_server.url}/graphql/ide/graphiql-3.8.3.min.js")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{memory_server.url}/graphql/ide/../../etc/passwd").status_code == 404
    assert httpx.get(f"{memory_server.url}/graphql/ide/other.js").status_code == 404


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_syntax_error_over_websocket_is_reported(memory_server: ServerProcess, protocol: str) -> None:
    # With the parse cache, Strawberry used to crash the operation's task on this instead.
    from tests.support.gql_clients import Subscriber

    subscriber = await Subscriber.open(memory_server.ws_url, protocol)
    try:
        await subscriber.subscribe("subscription { joinChatRooms(", {})
        await subscriber.expect_syntax_error()
    finally:
        await subscriber.close()
    assert "Exception in worker task" not in memory_server.log()
